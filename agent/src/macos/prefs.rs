//! Managed preferences (`com.sightline.agent`).

pub fn managed_values(_keys: &[&str]) -> Option<(String, toml::Table)> {
    None
}
