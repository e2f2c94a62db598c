//! Domain values every layer shares: the storage and wire edges convert to and from them,
//! so the rest of the collector never compares strings.

/// Assurance levels, weakest first: what the collector could prove about where a device key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assurance {
    Software,
    HardwareUnattested,
    HardwareAttested,
}

impl Assurance {
    pub fn as_str(self) -> &'static str {
        match self {
            Assurance::Software => "software",
            Assurance::HardwareUnattested => "hardware_unattested",
            Assurance::HardwareAttested => "hardware_attested",
        }
    }

    pub fn parse(s: &str) -> Option<Assurance> {
        [Assurance::Software, Assurance::HardwareUnattested, Assurance::HardwareAttested]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// Whether a device recorded at `level` meets this requirement.
    pub fn allows(self, level: &str) -> bool {
        Assurance::parse(level).is_some_and(|l| l >= self)
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Admin,
    Scim,
    Ingest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Scim => "scim",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Admin, Role::Scim, Role::Ingest].into_iter().find(|r| r.as_str() == s)
    }

    pub fn can_read(self) -> bool {
        matches!(self, Role::Viewer | Role::Admin)
    }
}
