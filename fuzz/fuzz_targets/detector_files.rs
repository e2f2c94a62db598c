//! Every detector's parser over hostile bytes, through the real scan: the input becomes one
//! file of a Linux home (its first byte picks which: an MCP config in JSON, JSONC, TOML or
//! YAML, a dotenv or shell rc file, a credential file, a browser extension manifest or
//! Firefox's extension list, a source file). Wherever the input says `@K`, an OpenAI-format
//! key is planted. The scan must finish, and that key must appear nowhere in what it
//! reports: findings, paths, locators, command lines, error messages.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sightline_agent::catalog::Catalog;
use sightline_agent::detect::Limits;
use sightline_agent::scan::{self, ScanOptions};
use sightline_agent::secret::Fingerprinter;

const FILES: &[&str] = &[
    ".cursor/mcp.json",
    ".config/Code/User/mcp.json",
    ".codex/config.toml",
    ".continue/config.yaml",
    "projects/app/.env",
    ".bashrc",
    ".codex/auth.json",
    ".cache/huggingface/stored_tokens",
    ".config/google-chrome/Default/Extensions/abcdefghijklmnopabcdefghijklmnop/1.0_0/manifest.json",
    ".mozilla/firefox/abc.default-release/extensions.json",
    "projects/app/main.py",
    ".config/goose/config.yaml",
];

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog::builtin().expect("catalog"));
static CANARY: LazyLock<String> = LazyLock::new(|| {
    let body = "Zq8vN2xL0pR4tY7uW1eK5sD9Zq8vN2xL0pR4tY7uW1eK5sD9Zq8vN2xL0pR4tY7uW1eK5sD9Zq";
    format!("sk-proj-{body}T3BlbkFJ{body}")
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let file = FILES[pick as usize % FILES.len()];
    let mut content = Vec::with_capacity(rest.len() + 256);
    let mut i = 0;
    while i < rest.len() {
        if rest[i..].starts_with(b"@K") {
            content.extend_from_slice(CANARY.as_bytes());
            i += 2;
        } else {
            content.push(rest[i]);
            i += 1;
        }
    }
    let root = tempfile::tempdir().expect("temp dir");
    let home = root.path().join("home/alice");
    let path = home.join(file);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    std::fs::write(root.path().join("etc/passwd"), "alice:x:1000:1000::/home/alice:/bin/bash\n")
        .expect("passwd");
    std::fs::write(&path, &content).expect("file");
    if file.ends_with("manifest.json") {
        let prefs = home.join(".config/google-chrome/Default/Preferences");
        std::fs::write(
            prefs,
            r#"{"extensions":{"settings":{"abcdefghijklmnopabcdefghijklmnop":{"state":1}}}}"#,
        )
        .ok();
    }
    let opts = ScanOptions { root: root.path().to_owned(), processes: false, limits: Limits::default(), activity: Default::default() };
    let fp = Fingerprinter::new(b"fuzz", false);
    let report = scan::run(&opts, &CATALOG, &fp).expect("a scan of a readable tree");
    let json = sightline_agent::report::to_json(&report).to_string();
    assert!(!json.contains(CANARY.as_str()), "the planted key reached the report: {json}");
    let table = sightline_agent::report::to_table(&report);
    assert!(!table.contains(CANARY.as_str()), "the planted key reached the table");
});
