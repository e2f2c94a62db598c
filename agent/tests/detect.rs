//! Detectors over the committed fixture trees (all three OS layouts) and over hostile
//! trees built at test time (links out of the tree, loops, FIFOs, giant, unreadable and
//! non-UTF-8 files).

use std::path::{Path, PathBuf};

use sightline_agent::catalog::Catalog;
use sightline_agent::detect::{Finding, Limits, ProviderAccount, scan_files};
use sightline_agent::fsview::Tree;
use sightline_agent::report;
use sightline_agent::scan::{ScanOptions, run};
use sightline_agent::secret::Fingerprinter;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fp() -> Fingerprinter {
    Fingerprinter::new(b"test-org-key-0123456789abcdef0123", true)
}

/// One line per finding in the ground truth's form: identity, not presentation (redacted
/// command lines and fingerprints are checked by other tests). A token or install the tool
/// records a signed-in account for ends in ` by=ACCOUNT[ org=ORG]`.
fn summary(f: &Finding) -> String {
    let u = |u: &Option<String>| u.clone().unwrap_or_else(|| "-".into());
    let by = |a: &Option<ProviderAccount>| match a {
        None => String::new(),
        Some(a) => {
            format!(" by={}{}", a.account, a.org.as_ref().map(|o| format!(" org={o}")).unwrap_or_default())
        }
    };
    match f {
        Finding::Process(p) => format!("process {} {}", p.tool, p.name),
        Finding::App(a) => format!("app {} {} {}{}", a.tool, u(&a.user), a.path, by(&a.authorized_by)),
        Finding::Extension(e) => format!(
            "extension {} {} {}/{} {} enabled={}",
            e.tool.as_deref().unwrap_or("?"),
            u(&e.user),
            e.browser,
            e.profile,
            e.extension_id,
            e.enabled.map_or("?".to_owned(), |b| b.to_string()),
        ),
        Finding::Token(t) => format!(
            "token {} {} {} {} {} {}{}",
            t.provider,
            t.kind.as_str(),
            u(&t.user),
            t.source.as_str(),
            t.path,
            t.locator.as_deref().unwrap_or("-"),
            by(&t.authorized_by),
        ),
        Finding::McpServer(m) => {
            format!("mcp {} {} {} {} {}", m.client, u(&m.user), m.name, m.transport, m.path)
        }
    }
}

/// The planted connectors of one layout, from `ground-truth.tsv`.
fn ground_truth(layout: &str) -> Vec<String> {
    std::fs::read_to_string(fixtures().join("ground-truth.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .filter(|(lay, _)| *lay == layout)
        .map(|(_, s)| s.to_owned())
        .collect()
}

fn scan_layout(layout: &str) -> sightline_agent::detect::FileScan {
    let catalog = Catalog::builtin().unwrap();
    let tree = Tree::open_root(&fixtures().join(layout)).unwrap();
    scan_files(&tree, &catalog, &fp(), &Limits::default())
}

/// Exact agreement with the ground truth, and exactly the expected per-file problems.
fn check(layout: &str, expected_errors: &[&str]) {
    let scan = scan_layout(layout);
    let mut got: Vec<String> = scan.findings.iter().map(summary).collect();
    got.sort();
    let mut want = ground_truth(layout);
    want.sort();
    let missed: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
    let extra: Vec<&String> = got.iter().filter(|g| !want.contains(g)).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "{layout}\nmissed: {missed:#?}\nfalse positives: {extra:#?}"
    );
    let errors: Vec<String> = scan.errors.iter().map(|e| format!("{}: {}", e.path, e.error)).collect();
    assert_eq!(errors.len(), expected_errors.len(), "errors: {errors:#?}");
    for (e, want) in errors.iter().zip(expected_errors) {
        assert!(e.contains(want), "{e} should contain {want}");
    }
}

#[test]
fn linux_layout() {
    check(
        "linux",
        &[
            // alice's Codex id_token is not a JWT: her account is not read, and the error
            // names the field, never the token.
            "/home/alice/.codex/auth.json: tokens/id_token: JWT payload is not a JSON object; its account was not read",
            "/home/bob/.gemini/settings.json: malformed JSON",
        ],
    );
}

#[test]
fn macos_layout() {
    check("macos", &["/Applications/Broken.app/Contents/Info.plist: malformed Info.plist"]);
}

#[test]
fn windows_layout() {
    check("windows", &[]);
}

/// Installs report the version their layout tells: a native-installer build's file name, an
/// npm package's `package.json`, an AppImage's file name (or its launcher's
/// `X-AppImage-Version`), an MSIX package folder's name, a nested bundle's Info.plist.
#[test]
fn install_versions_come_from_where_the_install_says() {
    let want = [
        ("linux", "/root/.local/share/claude/versions/2.0.28", Some("2.0.28")),
        ("linux", "/usr/local/lib/node_modules/@openai/codex", Some("0.46.0")),
        ("linux", "/home/bob/.nvm/versions/node/v22.11.0/lib/node_modules/@google/gemini-cli", Some("0.9.0")),
        ("linux", "/home/bob/Downloads/Cursor-1.7.28-x86_64.AppImage", Some("1.7.28")),
        ("linux", "/home/alice/Applications/LM-Studio-0.3.5-x64.AppImage", Some("0.3.5")),
        // Nothing in the name: the launcher's X-AppImage-Version.
        ("linux", "/home/bob/Apps/Msty_x86_64_amd64.AppImage", Some("1.9.2")),
        ("macos", "/opt/homebrew/lib/node_modules/@anthropic-ai/claude-code", Some("2.0.14")),
        ("macos", "/Users/carol/.local/share/claude/versions/2.1.39", Some("2.1.39")),
        ("macos", "/Applications/Setapp/BoltAI.app", Some("1.36.4")),
        (
            "windows",
            "/Program Files/WindowsApps/Claude_1.5354.0.0_x64__pzs8sxrjxfjjc/app/Claude.exe",
            Some("1.5354.0.0"),
        ),
        ("windows", "/Users/dave/AppData/Roaming/npm/node_modules/@anthropic-ai/claude-code", Some("2.0.14")),
        ("windows", "/Program Files/LM Studio/LM Studio.exe", None),
    ];
    for layout in ["linux", "macos", "windows"] {
        let scan = scan_layout(layout);
        for (_, path, version) in want.iter().filter(|(l, _, _)| *l == layout) {
            let found: Vec<Option<&str>> = scan
                .findings
                .iter()
                .filter_map(|f| match f {
                    Finding::App(a) if a.path == *path => Some(a.version.as_deref()),
                    _ => None,
                })
                .collect();
            assert_eq!(found, vec![*version], "{layout} {path}");
        }
    }
}

/// Precision and recall per finding kind over the whole corpus (decoys included), against
/// the bar: recall ≥ 0.95, precision ≥ 0.98.
#[test]
fn precision_and_recall_per_kind() {
    let mut table = std::collections::BTreeMap::<String, (usize, usize, usize)>::new(); // tp, fp, fn
    for layout in ["linux", "macos", "windows"] {
        let got: std::collections::HashSet<String> =
            scan_layout(layout).findings.iter().map(summary).collect();
        let want: std::collections::HashSet<String> = ground_truth(layout).into_iter().collect();
        // Per kind, and for tokens per source too (`token/shell_history`), so a weak new
        // source cannot hide behind the strong old ones.
        let kinds = |s: &str| {
            let words: Vec<&str> = s.split(' ').collect();
            let mut k = vec![words[0].to_owned()];
            if words[0] == "token" {
                k.push(format!("token/{}", words.get(4).unwrap_or(&"?")));
            }
            k
        };
        for g in &got {
            for k in kinds(g) {
                let e = table.entry(k).or_default();
                if want.contains(g) { e.0 += 1 } else { e.1 += 1 }
            }
        }
        for w in want.difference(&got) {
            for k in kinds(w) {
                table.entry(k).or_default().2 += 1;
            }
        }
    }
    let mut report = String::new();
    for (kind, (tp, fp, fneg)) in &table {
        let precision = *tp as f64 / (tp + fp).max(1) as f64;
        let recall = *tp as f64 / (tp + fneg).max(1) as f64;
        report += &format!(
            "{kind:<22} tp {tp:>3} fp {fp:>2} fn {fneg:>2}  precision {precision:.3}  recall {recall:.3}\n"
        );
        assert!(recall >= 0.95 && precision >= 0.98, "{kind} below the bar:\n{report}");
    }
    for kind in ["app", "extension", "token", "mcp"] {
        assert!(table.get(kind).is_some_and(|(tp, _, _)| *tp >= 10), "corpus too thin for {kind}:\n{report}");
    }
    for kind in ["token/shell_history", "token/netrc"] {
        assert!(table.get(kind).is_some_and(|(tp, _, _)| *tp >= 5), "corpus too thin for {kind}:\n{report}");
    }
    println!("{report}");
}

/// Every fabricated secret in the fixtures, from the list the generator wrote.
fn fixture_secrets() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("secrets.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_secret_reaches_scan_output() {
    let catalog = Catalog::builtin().unwrap();
    let secrets = fixture_secrets();
    assert!(secrets.len() > 20);
    for os in ["linux", "macos", "windows"] {
        let opts = ScanOptions {
            root: fixtures().join(os),
            processes: false,
            limits: Limits::default(),
            activity: Default::default(),
        };
        let r = run(&opts, &catalog, &fp()).unwrap();
        let out = format!("{}\n{}\n{:?}", report::to_json(&r), report::to_table(&r), r);
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "{os}: secret leaked into scan output");
        }
    }
}

/// The published JSON Schema (agent/schema/sightline.scan.v1.json) accepts what `scan`
/// prints for every layout, including live processes, and rejects a finding carrying a
/// field it does not define.
#[test]
fn scan_json_matches_the_published_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/sightline.scan.v1.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let catalog = Catalog::builtin().unwrap();
    for os in ["linux", "macos", "windows"] {
        let opts = ScanOptions {
            root: fixtures().join(os),
            processes: true,
            limits: Limits::default(),
            activity: Default::default(),
        };
        let mut v = report::to_json(&run(&opts, &catalog, &fp()).unwrap());
        // A live process finding in the same shape the detector emits.
        v["findings"].as_array_mut().unwrap().push(report::finding_json(&Finding::Process(
            sightline_agent::detect::ProcessFinding {
                tool: "ollama".into(),
                user: None,
                pid: 7,
                name: "ollama".into(),
                exe: None,
            },
        )));
        let errors: Vec<String> =
            validator.iter_errors(&v).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{os}: {errors:#?}");
        v["findings"][0]["secret"] = "x".into();
        assert!(!validator.is_valid(&v));
    }
}

#[test]
fn same_token_same_fingerprint_and_key_dependent() {
    let catalog = Catalog::builtin().unwrap();
    let tree = Tree::open_root(&fixtures().join("linux")).unwrap();
    let a = scan_files(&tree, &catalog, &fp(), &Limits::default());
    let b = scan_files(&tree, &catalog, &fp(), &Limits::default());
    let other = scan_files(&tree, &catalog, &Fingerprinter::new(b"another-org", true), &Limits::default());
    let fps = |s: &sightline_agent::detect::FileScan| -> Vec<String> {
        s.findings
            .iter()
            .filter_map(|f| if let Finding::Token(t) = f { Some(t.fingerprint.clone()) } else { None })
            .collect()
    };
    assert_eq!(fps(&a), fps(&b));
    assert!(fps(&a).iter().zip(fps(&other)).all(|(x, y)| *x != y));
    assert!(fps(&a).iter().all(|f| f.len() == 32 && f.bytes().all(|b| b.is_ascii_hexdigit())));
}

#[test]
fn json_document_follows_the_contract() {
    let catalog = Catalog::builtin().unwrap();
    let opts = ScanOptions {
        root: fixtures().join("linux"),
        processes: false,
        limits: Limits::default(),
        activity: Default::default(),
    };
    let v = report::to_json(&run(&opts, &catalog, &fp()).unwrap());
    assert_eq!(v["schema"], "sightline.scan.v1");
    assert_eq!(v["device"]["hostname"], "fixture-linux");
    assert_eq!(v["device"]["os"], "linux");
    let findings = v["findings"].as_array().unwrap();
    let token = findings.iter().find(|f| f["kind"] == "token" && f["source"] == "dotenv").unwrap();
    for key in ["provider", "token_kind", "user", "path", "source", "fingerprint"] {
        assert!(!token[key].is_null(), "{key}");
    }
    let ext = findings.iter().find(|f| f["kind"] == "extension" && f["tool"].is_null()).unwrap();
    for key in ["browser", "profile", "extension_id", "name", "version", "enabled", "path"] {
        assert!(ext.get(key).is_some(), "{key}");
    }
    assert!(v["errors"].as_array().unwrap().iter().all(|e| e["path"].is_string() && e["error"].is_string()));

    let opts = ScanOptions {
        root: fixtures().join("macos"),
        processes: false,
        limits: Limits::default(),
        activity: Default::default(),
    };
    let v = report::to_json(&run(&opts, &catalog, &fp()).unwrap());
    assert_eq!(
        (v["device"]["hostname"].as_str(), v["device"]["os_version"].as_str()),
        (Some("carols-macbook"), Some("15.1"))
    );
}

// === Hostile trees ===

#[cfg(unix)]
mod hostile {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{PermissionsExt, symlink};

    const KEY_LINE: &str = "export GROQ_API_KEY=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";

    /// Every hostile scan is also held to one finding per identity.
    fn scan(root: &Path, limits: Limits) -> sightline_agent::detect::FileScan {
        let tree = Tree::open_root(root).unwrap();
        let s = scan_files(&tree, &Catalog::builtin().unwrap(), &fp(), &limits);
        assert_unique_identities(&s, &root.display().to_string());
        s
    }

    fn tokens_at(s: &sightline_agent::detect::FileScan) -> Vec<String> {
        s.findings
            .iter()
            .filter_map(|f| if let Finding::Token(t) = f { Some(t.path.clone()) } else { None })
            .collect()
    }

    /// Whether this process is root: the link tests chown files to other users.
    fn running_as_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    }

    /// Ownership can only be set up as root (CI runs the tests as root, so there it must).
    fn require_root(test: &str) -> bool {
        if running_as_root() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} chowns files to other users: run the tests as root"
        );
        eprintln!("{test}: not root, so files cannot be given other owners; not run (CI runs it as root)");
        false
    }

    fn put(path: &Path, text: &str, uid: u32, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn own_dir(path: &Path, uid: u32, mode: u32) {
        std::fs::create_dir_all(path).unwrap();
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn errors_at(s: &sightline_agent::detect::FileScan) -> Vec<String> {
        s.errors.iter().map(|e| format!("{}: {}", e.path, e.error)).collect()
    }

    /// Dotfile managers' links are followed when they stay inside the scan root and land on
    /// the user's own (or root's) readable files; everything else is refused and reported.
    #[test]
    fn home_links_are_followed_by_the_scanned_systems_rules_and_owners() {
        if !require_root("home_links_are_followed_by_the_scanned_systems_rules_and_owners") {
            return;
        }
        let (alice_uid, bob_uid) = (4101, 4102);
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = t.path().join("root");
        own_dir(&root.join("home"), 0, 0o755);
        let a = root.join("home/alice");
        own_dir(&a, alice_uid, 0o750);
        own_dir(&root.join("home/bob"), bob_uid, 0o755);
        // Benign: stow (relative), absolute into the same home, a whole directory, root's
        // world-readable dotfiles outside the home (/opt, a Nix store path).
        put(&a.join("dotfiles/zsh/.zshrc"), KEY_LINE, alice_uid, 0o644);
        symlink("dotfiles/zsh/.zshrc", a.join(".zshrc")).unwrap();
        put(&a.join("dotfiles/bash/bashrc"), KEY_LINE, alice_uid, 0o600);
        symlink("/home/alice/dotfiles/bash/bashrc", a.join(".bashrc")).unwrap();
        let hosts =
            r#"{"github.com": {"user": "alice", "oauth_token": "gho_Q7wE9rT2yU4iO6pA8sD1fG3hJ5kL7zX9cV2b"}}"#;
        put(&a.join("dotfiles/config/github-copilot/hosts.json"), hosts, alice_uid, 0o600);
        symlink("/home/alice/dotfiles/config", a.join(".config")).unwrap();
        own_dir(&root.join("opt/dotfiles"), 0, 0o755);
        put(&root.join("opt/dotfiles/profile"), KEY_LINE, 0, 0o644);
        symlink("/opt/dotfiles/profile", a.join(".profile")).unwrap();
        own_dir(&root.join("nix/store/0a1b2c-home-manager-files"), 0, 0o555);
        put(&root.join("nix/store/0a1b2c-home-manager-files/.zshenv"), KEY_LINE, 0, 0o444);
        symlink("/nix/store/0a1b2c-home-manager-files/.zshenv", a.join(".zshenv")).unwrap();
        // A chain of ten links is fine.
        put(&a.join("chain/10"), KEY_LINE, alice_uid, 0o644);
        for i in 0..10 {
            symlink(format!("{}", i + 1), a.join(format!("chain/{i}"))).unwrap();
        }
        symlink("chain/0", a.join(".kshrc")).unwrap();
        // Hostile: another user's file, a root-only file, a world-readable file in root's
        // 0700 home, a loop, a chain past 40 links, `..` past the scan root.
        put(&root.join("home/bob/.bashrc"), KEY_LINE, bob_uid, 0o644);
        symlink("/home/bob/.bashrc", a.join(".bash_profile")).unwrap();
        own_dir(&root.join("etc"), 0, 0o755);
        put(&root.join("etc/shadow"), KEY_LINE, 0, 0o600);
        symlink("/etc/shadow", a.join(".zprofile")).unwrap();
        own_dir(&root.join("root"), 0, 0o700);
        put(&root.join("root/.bashrc"), KEY_LINE, 0, 0o644);
        symlink("../../root/.bashrc", a.join(".zlogin")).unwrap();
        own_dir(&a.join("proj"), alice_uid, 0o755);
        symlink("loop-b", a.join("proj/.env")).unwrap();
        symlink(".env", a.join("proj/loop-b")).unwrap();
        put(&a.join("long/45"), KEY_LINE, alice_uid, 0o644);
        for i in 0..45 {
            symlink(format!("{}", i + 1), a.join(format!("long/{i}"))).unwrap();
        }
        symlink("long/0", a.join(".cshrc")).unwrap();
        std::fs::write(t.path().join("outside.env"), KEY_LINE).unwrap();
        symlink("../../../outside.env", a.join(".bash_login")).unwrap();
        // An absolute link means the scanned system's path: the host's file is never read.
        symlink(t.path().join("outside.env"), a.join(".tcshrc")).unwrap();

        let s = scan(&root, Limits::default());
        let mut got: Vec<String> =
            tokens_at(&s).into_iter().filter(|p| p.starts_with("/home/alice/")).collect();
        got.sort();
        let want = [
            "/home/alice/.bashrc",
            "/home/alice/.config/github-copilot/hosts.json",
            "/home/alice/.kshrc",
            "/home/alice/.profile",
            "/home/alice/.zshenv",
            "/home/alice/.zshrc",
        ];
        // Reported at the link's path, once: the file under dotfiles/ is not reported again.
        assert_eq!(got, want, "{:#?}", errors_at(&s));
        let errs = errors_at(&s);
        let has =
            |p: &str, msg: &str| errs.iter().any(|e| e.starts_with(&format!("{p}: ")) && e.contains(msg));
        for (path, msg) in [
            ("/home/alice/.bash_profile", "owned by another user"),
            ("/home/alice/.zprofile", "its user cannot read"),
            ("/home/alice/.zlogin", "its user cannot read"),
            ("/home/alice/proj/.env", "symlinks in a row"),
            ("/home/alice/.cshrc", "symlinks in a row"),
            ("/home/alice/.bash_login", "outside the scanned tree"),
        ] {
            assert!(has(path, msg), "{path}: no `{msg}` error in {errs:#?}");
        }
        assert!(!errs.iter().any(|e| e.starts_with("/home/alice/.tcshrc")), "{errs:#?}");
        assert!(errs.iter().all(|e| !e.contains("gsk_") && !e.contains("gho_")), "{errs:#?}");
        // Bob's own file is bob's, not alice's.
        let bob: Vec<_> = s
            .findings
            .iter()
            .filter_map(
                |f| if let Finding::Token(t) = f { Some((t.user.clone(), t.path.clone())) } else { None },
            )
            .filter(|(_, p)| p.starts_with("/home/bob"))
            .collect();
        assert_eq!(bob, [(Some("bob".to_owned()), "/home/bob/.bashrc".to_owned())]);
    }

    /// A stow-linked history (relative or absolute, into the home's dotfiles) is read like
    /// any other linked dotfile, not refused as leading outside.
    #[test]
    fn linked_histories_are_followed_like_other_dotfiles() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("home/alice");
        std::fs::create_dir_all(a.join("dotfiles")).unwrap();
        std::fs::write(a.join("dotfiles/bash_history"), format!("ls\n{KEY_LINE}\n")).unwrap();
        std::fs::write(a.join("dotfiles/zsh_history"), format!(": 1700000000:0;{KEY_LINE}\n")).unwrap();
        symlink("dotfiles/bash_history", a.join(".bash_history")).unwrap();
        symlink("/home/alice/dotfiles/zsh_history", a.join(".zsh_history")).unwrap();
        let s = scan(t.path(), Limits::default());
        let got = tokens_at(&s);
        for want in ["/home/alice/.bash_history", "/home/alice/.zsh_history"] {
            assert!(got.iter().any(|p| p == want), "{want} not read: {got:?} {:#?}", errors_at(&s));
        }
        assert!(errors_at(&s).iter().all(|e| !e.contains("_history")), "{:#?}", errors_at(&s));
    }

    /// A directory reached through a home's link (`~/etc -> /etc`) may be root's and
    /// world-readable; each file read in it is still checked as the home's user, so a
    /// root-only file there is refused, whichever way it is opened.
    #[test]
    fn files_in_a_linked_directory_are_checked_each() {
        if !require_root("files_in_a_linked_directory_are_checked_each") {
            return;
        }
        let (alice_uid, bob_uid) = (4111, 4112);
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = t.path().join("root");
        own_dir(&root.join("home"), 0, 0o755);
        let a = root.join("home/alice");
        own_dir(&a, alice_uid, 0o750);
        own_dir(&root.join("etc"), 0, 0o755);
        put(&root.join("etc/public.env"), KEY_LINE, 0, 0o644);
        put(&root.join("etc/private.env"), KEY_LINE, 0, 0o600);
        put(&root.join("etc/bob.env"), KEY_LINE, bob_uid, 0o644);
        symlink("/etc", a.join("etc")).unwrap();

        let top = Tree::open_root(&root).unwrap();
        let home = top.home(Path::new("home/alice"), false).unwrap();
        let linked = home.subtree(Path::new("etc")).unwrap();
        assert_eq!(linked.read(Path::new("public.env"), 1000).unwrap(), KEY_LINE.as_bytes());
        assert!(linked.open_file(Path::new("public.env")).is_ok());
        for (name, why) in [("private.env", "its user cannot read"), ("bob.env", "owned by another user")] {
            let e = linked.read(Path::new(name), 1000).unwrap_err().to_string();
            assert!(e.contains(why), "{name} read in the linked dir: {e}");
            let e = linked.open_file(Path::new(name)).unwrap_err().to_string();
            assert!(e.contains(why), "{name} opened by range in the linked dir: {e}");
            let e = home.read(&Path::new("etc").join(name), 1000).unwrap_err().to_string();
            assert!(e.contains(why), "{name} read through the link: {e}");
        }
        // A subtree of the linked dir is checked too.
        own_dir(&root.join("etc/sub"), 0, 0o755);
        put(&root.join("etc/sub/private.env"), KEY_LINE, 0, 0o600);
        let sub = linked.subtree(Path::new("sub")).unwrap();
        let e = sub.read(Path::new("private.env"), 1000).unwrap_err().to_string();
        assert!(e.contains("its user cannot read"), "{e}");
        // The home's own files are read as before.
        put(&a.join(".env"), KEY_LINE, alice_uid, 0o600);
        assert!(home.read(Path::new(".env"), 1000).is_ok());
    }

    /// Windows layouts have no uid to compare: a home's links are followed only within it
    /// (a OneDrive-redirected Documents folder), never to elsewhere on the drive.
    #[test]
    fn windows_home_links_stay_in_the_home() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let d = root.join("Users/dave");
        std::fs::create_dir_all(root.join("Windows/System32")).unwrap();
        let ps = "$env:GROQ_API_KEY = \"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\"\n";
        std::fs::create_dir_all(d.join("OneDrive/Documents/PowerShell")).unwrap();
        std::fs::write(d.join("OneDrive/Documents/PowerShell/Microsoft.PowerShell_profile.ps1"), ps).unwrap();
        symlink("/Users/dave/OneDrive/Documents", d.join("Documents")).unwrap();
        std::fs::create_dir_all(root.join("ProgramData/codex")).unwrap();
        std::fs::write(
            root.join("ProgramData/codex/auth.json"),
            r#"{"OPENAI_API_KEY": "sk-proj-Q7wE9rT2yU4iO6pA8sD1fG3hJ5kL7zX9cV2bN4mQ6wE8rT1yU3iO"}"#,
        )
        .unwrap();
        symlink("/ProgramData/codex", d.join(".codex")).unwrap();

        let s = scan(root, Limits::default());
        assert_eq!(tokens_at(&s), ["/Users/dave/Documents/PowerShell/Microsoft.PowerShell_profile.ps1"]);
        let errs = errors_at(&s);
        assert!(
            errs.iter().any(|e| e.starts_with("/Users/dave/.codex/auth.json: ") && e.contains("outside")),
            "{errs:#?}"
        );
    }

    fn apps(s: &sightline_agent::detect::FileScan) -> Vec<(String, String, Option<String>)> {
        let mut v: Vec<_> = s
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::App(a) => {
                    Some((a.user.clone().unwrap_or("-".into()), a.path.clone(), a.version.clone()))
                }
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// The links installers write, built here because the committed trees hold none (Wine
    /// follows links, and the Windows agent scans those trees under it): Claude Code's native
    /// installer links `~/.local/bin/claude` to a build in `versions/`, absolutely (or
    /// relatively, as asked in anthropics/claude-code#19965); npm links `bin/<name>` into the
    /// package. Each is one install at the link, with the version of what it points at; a
    /// link whose package was removed is a leftover.
    #[test]
    fn installer_links_are_one_install_each() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let link = |target: &str, rel: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
        };
        write("home/bob/.local/share/claude/versions/2.1.29", "\x7fELF");
        write("home/bob/.local/share/claude/versions/2.1.39", "\x7fELF");
        link("/home/bob/.local/share/claude/versions/2.1.29", "home/bob/.local/bin/claude");
        write("home/carol/.local/share/claude/versions/2.1.40", "\x7fELF");
        link("../share/claude/versions/2.1.40", "home/carol/.local/bin/claude");
        let nm = "usr/local/lib/node_modules";
        write(
            &format!("{nm}/@openai/codex/package.json"),
            r#"{"name": "@openai/codex", "version": "0.46.0"}"#,
        );
        write(&format!("{nm}/@openai/codex/bin/codex.js"), "#!/usr/bin/env node\n");
        link("../lib/node_modules/@openai/codex/bin/codex.js", "usr/local/bin/codex");
        write(&format!("{nm}/typescript/package.json"), r#"{"name": "typescript", "version": "5.6.3"}"#);
        write(&format!("{nm}/typescript/bin/tsc"), "#!/usr/bin/env node\n");
        link("../lib/node_modules/typescript/bin/tsc", "usr/local/bin/tsc");
        link("../lib/node_modules/@google/gemini-cli/dist/index.js", "usr/local/bin/gemini");

        let s = scan(root, Limits::default());
        let v = |s: &str| Some(s.to_owned());
        assert_eq!(
            apps(&s),
            vec![
                ("-".into(), "/usr/local/bin/codex".into(), v("0.46.0")),
                ("bob".into(), "/home/bob/.local/bin/claude".into(), v("2.1.29")),
                ("carol".into(), "/home/carol/.local/bin/claude".into(), v("2.1.40")),
            ]
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);

        // A Homebrew cask's binary links into its Caskroom version folder (macOS layout).
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("Users/carol")).unwrap();
        std::fs::create_dir_all(root.join("Applications")).unwrap();
        let cask = root.join("opt/homebrew/Caskroom/codex/0.46.0");
        std::fs::create_dir_all(&cask).unwrap();
        std::fs::write(cask.join("codex-aarch64-apple-darwin"), "\x7fELF").unwrap();
        std::fs::create_dir_all(root.join("opt/homebrew/bin")).unwrap();
        symlink(
            "/opt/homebrew/Caskroom/codex/0.46.0/codex-aarch64-apple-darwin",
            root.join("opt/homebrew/bin/codex"),
        )
        .unwrap();
        let s = scan(root, Limits::default());
        assert_eq!(apps(&s), vec![("-".into(), "/opt/homebrew/bin/codex".into(), v("0.46.0"))]);
    }

    /// Install links are read, never followed: one into another home is reported at the link
    /// without reading what it points at; one whose build is gone is a leftover; an npm root
    /// that leads out of the home is no root of this home (its package is not read).
    #[test]
    fn install_links_are_read_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let home = root.join("home/mallory");
        let victim = root.join("home/victim");
        std::fs::create_dir_all(home.join(".local/bin")).unwrap();
        std::fs::create_dir_all(victim.join(".local/share/claude/versions")).unwrap();
        std::fs::write(victim.join(".local/share/claude/versions/9.9.9"), "\x7fELF").unwrap();
        symlink("/home/victim/.local/share/claude/versions/9.9.9", home.join(".local/bin/claude")).unwrap();
        symlink("/home/mallory/.local/share/codex/gone", home.join(".local/bin/codex")).unwrap();
        let pkg = victim.join("npm/lib/node_modules/@openai/codex");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("package.json"), r#"{"name": "@openai/codex", "version": "6.6.6"}"#).unwrap();
        symlink(victim.join("npm"), home.join(".npm-global")).unwrap();

        let s = scan(&root, Limits::default());
        assert_eq!(
            apps(&s),
            vec![
                ("mallory".into(), "/home/mallory/.local/bin/claude".into(), None),
                (
                    "victim".into(),
                    "/home/victim/.local/share/claude/versions/9.9.9".into(),
                    Some("9.9.9".into())
                ),
            ]
        );
    }

    #[test]
    fn fifos_giant_files_and_malformed_manifests() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home/eve");
        std::fs::create_dir_all(home.join("app")).unwrap();
        let status = std::process::Command::new("mkfifo").arg(home.join(".bashrc")).status().unwrap();
        assert!(status.success());
        std::process::Command::new("mkfifo").arg(home.join("app/.env")).status().unwrap();
        std::process::Command::new("mkfifo").arg(home.join(".zsh_history")).status().unwrap();
        let mut big = KEY_LINE.to_owned() + "\n";
        big.push_str(&"#".repeat(2 * 1024 * 1024));
        std::fs::write(home.join(".zshrc"), big).unwrap();
        let ext =
            home.join(".config/google-chrome/Default/Extensions/fcoeoabgfenejglbffodgkkbkcdhcgfn/1.0_0");
        std::fs::create_dir_all(&ext).unwrap();
        std::fs::write(ext.join("manifest.json"), "{\"name\": ").unwrap();
        let other =
            home.join(".config/google-chrome/Default/Extensions/difoiogjjojoaoomphldepapgpbgkhkb/1.0_0");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("manifest.json"), [0xff, 0xfe, 0x00, 0x01]).unwrap();

        let s = scan(t.path(), Limits::default());
        assert!(tokens_at(&s).is_empty());
        let errs: Vec<String> = s.errors.iter().map(|e| format!("{}: {}", e.path, e.error)).collect();
        let has = |p: &str, msg: &str| errs.iter().any(|e| e.starts_with(p) && e.contains(msg));
        assert!(has("/home/eve/.bashrc", "not a regular file"), "{errs:#?}");
        assert!(has("/home/eve/app/.env", "not a regular file"), "{errs:#?}");
        assert!(has("/home/eve/.zsh_history", "not a regular file"), "{errs:#?}");
        assert!(has("/home/eve/.zshrc", "limit"), "{errs:#?}");
        assert!(
            has(
                "/home/eve/.config/google-chrome/Default/Extensions/fcoeoabgfenejglbffodgkkbkcdhcgfn",
                "malformed manifest.json"
            ),
            "{errs:#?}"
        );
        assert!(
            has(
                "/home/eve/.config/google-chrome/Default/Extensions/difoiogjjojoaoomphldepapgpbgkhkb",
                "malformed manifest.json"
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn non_utf8_names_are_walked_and_reported_readably() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home/zoe");
        let odd = std::ffi::OsStr::from_bytes(b"proj-\xff\xfe");
        std::fs::create_dir_all(home.join(odd)).unwrap();
        std::fs::write(home.join(odd).join(".env"), KEY_LINE.trim_start_matches("export ")).unwrap();
        std::fs::write(home.join(std::ffi::OsStr::from_bytes(b"\xff.env")), KEY_LINE).unwrap();
        let s = scan(t.path(), Limits::default());
        let paths = tokens_at(&s);
        assert_eq!(paths.len(), 1, "{paths:?}");
        assert!(paths[0].starts_with("/home/zoe/proj-") && paths[0].ends_with("/.env"));
    }

    #[test]
    fn walk_bounds_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let mut deep = t.path().join("home/deep");
        for i in 0..10 {
            deep = deep.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join(".env"), KEY_LINE).unwrap();
        let s = scan(t.path(), Limits { walk_depth: 4, ..Limits::default() });
        assert!(tokens_at(&s).is_empty());
        let depth: Vec<_> = s.errors.iter().filter(|e| e.error.contains("directories down")).collect();
        // Once per home, at the first directory not entered, not once per directory.
        assert_eq!(depth.len(), 1, "{:?}", s.errors);
        assert_eq!(depth[0].path, "/home/deep/d0/d1/d2/d3/d4");
        let s = scan(t.path(), Limits::default());
        assert!(tokens_at(&s).is_empty(), "ten down is past the default depth too");
        let s = scan(t.path(), Limits { walk_depth: 10, ..Limits::default() });
        assert_eq!(tokens_at(&s), ["/home/deep/d0/d1/d2/d3/d4/d5/d6/d7/d8/d9/.env"]);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let s = scan(t.path(), Limits { walk_entries: 3, ..Limits::default() });
        assert!(s.errors.iter().any(|e| e.error.contains("bound")), "{:?}", s.errors);
    }

    /// The source-file count and size bounds and the `*` fan-out cap each say so, once a home.
    #[test]
    fn every_bound_reports_itself_once_per_home() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home/fay");
        for i in 0..5 {
            std::fs::create_dir_all(home.join(format!("p{i}"))).unwrap();
            std::fs::write(home.join(format!("p{i}/big.py")), "x = 1\n".repeat(100)).unwrap();
            std::fs::write(home.join(format!("p{i}/small.py")), "x = 1\n").unwrap();
        }
        // Cline's settings are looked for under every `~/.config/*` (VS Code forks); 70
        // directories there is past the fan-out cap.
        for i in 0..70 {
            std::fs::create_dir_all(home.join(format!(".config/app{i:02}"))).unwrap();
        }
        let limits = Limits { source_files: 3, source_file_size: 100, ..Limits::default() };
        let s = scan(t.path(), limits);
        let count = |needle: &str| s.errors.iter().filter(|e| e.error.contains(needle)).count();
        assert_eq!(count("source-file limit reached"), 1, "{:?}", s.errors);
        assert_eq!(count("over the 100-byte limit"), 1, "{:?}", s.errors);
        assert_eq!(count("entries match"), 1, "{:?}", s.errors);
    }

    /// Root ignores file modes, so as root the scan is re-run as `nobody` via setpriv.
    #[test]
    fn unreadable_files_and_dirs_are_reported_not_fatal() {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = t.path().join("home/ann");
        std::fs::create_dir_all(home.join("locked")).unwrap();
        std::fs::write(home.join(".bashrc"), KEY_LINE).unwrap();
        std::fs::write(home.join(".zshrc"), KEY_LINE).unwrap();
        std::fs::set_permissions(home.join(".bashrc"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(home.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
        for d in [t.path().join("home"), home.clone()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(home.join(".zshrc"), std::fs::Permissions::from_mode(0o644)).unwrap();

        let is_root = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        let bin = env!("CARGO_BIN_EXE_sightline-agent");
        let mut cmd = if is_root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c
        } else {
            std::process::Command::new(bin)
        };
        let out = cmd
            .args(["scan", "--no-processes", "--format", "json", "--root"])
            .arg(t.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors = v["errors"].as_array().unwrap();
        let has = |p: &str| {
            errors.iter().any(|e| e["path"] == p && e["error"].as_str().unwrap().contains("ermission denied"))
        };
        assert!(has("/home/ann/.bashrc"), "{errors:?}");
        assert!(has("/home/ann/locked"), "{errors:?}");
        // The readable file next to them was still scanned.
        assert!(v["findings"].as_array().unwrap().iter().any(|f| f["path"] == "/home/ann/.zshrc"));
    }
}

#[test]
fn an_exhausted_time_budget_is_reported_per_home() {
    let catalog = Catalog::builtin().unwrap();
    let tree = Tree::open_root(&fixtures().join("linux")).unwrap();
    let limits = Limits { total_time: std::time::Duration::ZERO, ..Limits::default() };
    let scan = scan_files(&tree, &catalog, &fp(), &limits);
    let budget: Vec<&str> =
        scan.errors.iter().filter(|e| e.error.contains("budget")).map(|e| e.path.as_str()).collect();
    assert_eq!(budget, vec!["/home/alice", "/home/bob", "/root"]);
    assert!(scan.findings.iter().all(|f| !matches!(f, Finding::Token(_))));
}

/// One finding per thing: no two findings of a scan share the identity the inventory keys
/// its view on (`inventory::identity`), on any layout. Two findings with one identity would
/// overwrite each other in the inventory and flap between scans.
#[test]
fn one_finding_per_identity_on_every_layout() {
    for layout in ["linux", "macos", "windows"] {
        let n = assert_unique_identities(&scan_layout(layout), layout);
        assert!(n >= 10, "{layout}: too few findings to mean anything");
    }
}

/// Fails on two findings with one inventory identity; returns how many findings there are.
fn assert_unique_identities(scan: &sightline_agent::detect::FileScan, what: &str) -> usize {
    let mut seen = std::collections::HashMap::new();
    for f in &scan.findings {
        let item = sightline_agent::convert::item(f);
        let (key, _) = sightline_agent::inventory::identity(&item).expect("findings have identities");
        if let Some(first) = seen.insert(key.replace('\0', " | "), summary(f)) {
            panic!("{what}: two findings share one identity:\n{first}\n{}", summary(f));
        }
    }
    seen.len()
}

/// Shell histories are read once (a tail window), then only what was appended: a later look
/// parses exactly the new bytes and still reports what the earlier bytes held; a file that
/// was rewritten is read again from the start.
#[test]
fn histories_are_read_incrementally() {
    use sightline_agent::detect::{detect_os, history::Memory, homes, scan_home};
    let catalog = Catalog::builtin().unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("home/ivy");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(".bash_history");
    let groq = format!("gsk_{}", "Q7wE9rT2yU4iO6pA8sD1fG3hJ5kL7zX9cV2bN4mQ6wE8rT1yU3iO");
    let xai = format!("xai-{}", "Zq8vN2xL0pR4tY7uW1eK5sD9".repeat(4).get(..80).unwrap());
    let openai = format!(
        "sk-proj-{}T3BlbkFJ{}",
        "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr".repeat(3),
        "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji".repeat(3)
    );
    let look = |memory: &Memory, limits: &Limits| {
        let root = Tree::open_root(t.path()).unwrap();
        let os = detect_os(&root);
        let hs = homes(&root, os, &mut Vec::new());
        let scan = scan_home(&catalog, &fp(), limits, os, &hs[0], None, memory);
        let mut got: Vec<String> = scan.findings.iter().map(summary).collect();
        got.sort();
        let errors: Vec<String> = scan.errors.iter().map(|e| e.error.clone()).collect();
        (got, errors)
    };
    let token = |provider: &str, locator: &str| {
        format!("token {provider} api_key ivy shell_history /home/ivy/.bash_history {locator}")
    };
    let append = |text: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(text.as_bytes()).unwrap();
    };
    let limits = Limits::default();
    let memory = Memory::default();

    let first = format!("ls\nexport GROQ_API_KEY={groq}\n");
    std::fs::write(&path, &first).unwrap();
    let (got, errors) = look(&memory, &limits);
    assert_eq!(got, vec![token("groq", "GROQ_API_KEY (line 2)")]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(memory.bytes_scanned(), first.len() as u64);

    let more =
        format!("cd /tmp\ncurl -H \"Authorization: Bearer {openai}\" https://api.openai.com/v1/models\n");
    append(&more);
    let (scanned, probed) = (memory.bytes_scanned(), memory.bytes_probed());
    let (got, _) = look(&memory, &limits);
    assert_eq!(got, vec![token("groq", "GROQ_API_KEY (line 2)"), token("openai", "line 4")]);
    assert_eq!(memory.bytes_scanned() - scanned, more.len() as u64, "only the appended bytes are parsed");
    assert!(memory.bytes_probed() - probed <= 4096, "identity costs at most the head");

    // Nothing new: nothing parsed, the same findings.
    let scanned = memory.bytes_scanned();
    assert_eq!(look(&memory, &limits).0.len(), 2);
    assert_eq!(memory.bytes_scanned(), scanned);

    // A line still being written is reported now, and once, when it is complete.
    append(&format!("export XAI_API_KEY={xai}"));
    let (got, _) = look(&memory, &limits);
    assert!(got.contains(&token("xai", "XAI_API_KEY (line 5)")), "{got:#?}");
    append("\necho done\n");
    let (got, _) = look(&memory, &limits);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got.contains(&token("xai", "XAI_API_KEY (line 5)")));

    // Rewritten in place (bash truncating to HISTFILESIZE): shorter, so read from the start.
    let rewritten = format!("export OPENAI_API_KEY={openai}\n");
    std::fs::write(&path, &rewritten).unwrap();
    let scanned = memory.bytes_scanned();
    let (got, _) = look(&memory, &limits);
    assert_eq!(got, vec![token("openai", "OPENAI_API_KEY (line 1)")]);
    assert_eq!(memory.bytes_scanned() - scanned, rewritten.len() as u64);
    // Replaced by a longer file with another beginning: its head differs, so read again.
    let replaced = format!("pwd\n{rewritten}ls\n");
    std::fs::write(&path, &replaced).unwrap();
    let (got, _) = look(&memory, &limits);
    assert_eq!(got, vec![token("openai", "OPENAI_API_KEY (line 2)")]);

    // Over the window: only the newest bytes are read, and the cut is reported.
    let big = format!("export GROQ_API_KEY={groq}\n{}export XAI_API_KEY={xai}\n", "ls -la\n".repeat(100));
    std::fs::write(&path, &big).unwrap();
    let small = Limits { history_window: 200, ..Limits::default() };
    let fresh = Memory::default();
    let (got, errors) = look(&fresh, &small);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("token xai api_key ivy shell_history"), "{got:#?}");
    assert_eq!(fresh.bytes_scanned(), 200);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("newest 200 bytes"), "{errors:?}");
    // What the memory keeps is fingerprints and positions, never a value.
    let kept = format!("{memory:?}{fresh:?}");
    for key in [&groq, &xai, &openai] {
        assert!(!kept.contains(key.as_str()), "a key is kept in the history memory");
    }
}
/// A look cut to the window counts lines from the window even for a history read before,
/// and never leaves its place in the middle of a line: an incremental look finds what a
/// fresh read of the same file finds.
#[test]
fn history_windows_cut_at_line_starts() {
    use sightline_agent::detect::{detect_os, history::Memory, homes, scan_home};
    let catalog = Catalog::builtin().unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("home/ivy");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(".bash_history");
    let groq = format!("gsk_{}", "Q7wE9rT2yU4iO6pA8sD1fG3hJ5kL7zX9cV2bN4mQ6wE8rT1yU3iO");
    let small = Limits { history_window: 200, ..Limits::default() };
    let look = |memory: &Memory| {
        let root = Tree::open_root(t.path()).unwrap();
        let os = detect_os(&root);
        let hs = homes(&root, os, &mut Vec::new());
        let scan = scan_home(&catalog, &fp(), &small, os, &hs[0], None, memory);
        let mut got: Vec<String> = scan.findings.iter().map(summary).collect();
        got.sort();
        got
    };
    let token =
        |locator: &str| format!("token groq api_key ivy shell_history /home/ivy/.bash_history {locator}");
    let append = |text: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(text.as_bytes()).unwrap();
    };

    // Remembered at line 3, then grown past the window: numbering restarts at the window.
    std::fs::write(&path, "ls\nls\nls\n").unwrap();
    let memory = Memory::default();
    assert!(look(&memory).is_empty());
    append(&format!("{}export GROQ_API_KEY={groq}\n", "ls -la\n".repeat(43)));
    let text = std::fs::read_to_string(&path).unwrap();
    let window = &text[text.len() - 200..];
    let whole_lines = &window[window.find('\n').unwrap() + 1..];
    let line = whole_lines.matches('\n').count();
    assert_eq!(look(&memory), vec![token(&format!("GROQ_API_KEY (line {line})"))]);
    assert_eq!(look(&Memory::default()), look(&memory), "the same as a fresh read");

    // A window with no newline lies inside one line: the next look does not start mid-line.
    std::fs::write(&path, format!("ls\necho {}", "x".repeat(400))).unwrap();
    let memory = Memory::default();
    assert!(look(&memory).is_empty());
    append(&format!(" {groq}\n"));
    let fresh = look(&Memory::default());
    assert!(fresh.is_empty(), "the line's beginning is outside the window: {fresh:?}");
    assert_eq!(look(&memory), fresh, "the rest of a line is not read as a line of its own");
    append(&format!("export GROQ_API_KEY={groq}\n"));
    assert_eq!(look(&memory), vec![token("GROQ_API_KEY (line 1)")]);
}

// === Round two: tool credential stores, .git/config, unpacked extensions ===

/// Claude Code's MCP OAuth grants name the MCP server they are for.
#[test]
fn mcp_oauth_grants_name_their_server() {
    for (layout, want) in [
        (
            "linux",
            &[
                ("linear|638130d5a1b2c3d4", "linear"),
                ("plugin:notion:notion|9f2e4c1a0b7d3e5f", "plugin:notion:notion"),
            ][..],
        ),
        ("windows", &[("sentry|1a2b3c4d5e6f7a8b", "sentry")][..]),
    ] {
        let scan = scan_layout(layout);
        for (key, server) in want {
            let servers: Vec<Option<&str>> = scan
                .findings
                .iter()
                .filter_map(|f| match f {
                    Finding::Token(t) if t.locator.as_deref().is_some_and(|l| l.contains(key)) => {
                        Some(t.mcp_server.as_deref())
                    }
                    _ => None,
                })
                .collect();
            assert!(
                !servers.is_empty() && servers.iter().all(|s| *s == Some(*server)),
                "{layout} {key}: {servers:?}"
            );
        }
        // Claude's own login in the same file is not an MCP server's.
        assert!(scan.findings.iter().all(|f| !matches!(f, Finding::Token(t)
            if t.locator.as_deref().is_some_and(|l| l.starts_with("/claudeAiOauth")) && t.mcp_server.is_some())));
    }
}

/// Credentials in repositories' `.git/config`, built at run time (git cannot commit a
/// `.git` directory): exact ground truth with decoys around them, nothing read from `.git`
/// but `config`, and no value in any output.
#[test]
fn git_config_credentials() {
    let ghp = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
    let ghp_vendored = "ghp_IBXuDL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7";
    let ghp_fetch_head = "ghp_FAc9QeWJKY40uvSwMFLZDe1f8rESQedUStPK";
    let ghs = "ghs_R0CsTy4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4";
    let hf = "hf_i0B3JrTAwR4y9ojfljoQoaF1LlqsajAIxN";
    let (pw_internal, pw_hf, pw_rewrite) =
        ("Ku8iS2G8NPRVdD53X83RZJzz", "Nbe3nNyjOq9wMxEhh2FDEEtf", "jgVvVqE1SkHbn88HxjSI6bWH");
    let glpat = "glpat-tP3fS2qHx6kwXoIIXGvO";
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{ghs}"));

    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home/erin");
    let put = |rel: &str, text: String| {
        let p = home.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put(
        "projects/app/.git/config",
        format!(
            "[core]\n\trepositoryformatversion = 0\n[remote \"origin\"]\n\
             \turl = https://x-access-token:{ghp}@github.com/erin/app.git\n\
             \tfetch = +refs/heads/*:refs/remotes/origin/*\n[remote \"mirror\"]\n\
             \turl = https://erin:{pw_internal}@git.acme.internal/erin/app.git\n[remote \"lab\"]\n\
             \turl = https://oauth2:{glpat}@gitlab.com/erin/app.git\n[remote \"plain\"]\n\
             \turl = git@github.com:erin/app.git\n[http \"https://github.com/\"]\n\
             \textraheader = AUTHORIZATION: basic {basic}\n[credential]\n\thelper = store\n"
        ),
    );
    put(
        "projects/app/.git/FETCH_HEAD",
        format!("abc\t\tbranch 'main' of https://{ghp_fetch_head}@github.com/erin/app\n"),
    );
    put(
        "projects/app/node_modules/dep/.git/config",
        format!("[remote \"origin\"]\n\turl = https://{ghp_vendored}@github.com/x/dep\n"),
    );
    put(
        "src/model/.git/config",
        format!(
            "[remote \"origin\"]\n\turl = https://erin:{hf}@huggingface.co/erin/model\n\
             [http \"https://huggingface.co\"]\n\textraHeader = \"Authorization: Bearer {pw_hf}\"\n\
             [remote \"upstream\"]\n\turl = https://huggingface.co/meta/model\n"
        ),
    );
    // The home itself is a dotfiles repository; its rewrite rule carries the credential.
    put(
        ".git/config",
        format!(
            "[url \"https://erin:{pw_rewrite}@github.com/\"]\n\tinsteadOf = https://github.com/\n\
             [remote \"origin\"]\n\turl = https://${{GITHUB_TOKEN}}@github.com/erin/dotfiles\n"
        ),
    );
    // A worktree's `.git` is a file pointing elsewhere: not a repository config.
    put("projects/wt/.git", "gitdir: /home/erin/projects/app/.git/worktrees/wt\n".into());

    let catalog = Catalog::builtin().unwrap();
    let tree = Tree::open_root(t.path()).unwrap();
    let scan = scan_files(&tree, &catalog, &fp(), &Limits::default());
    let mut got: Vec<String> = scan.findings.iter().map(summary).collect();
    got.sort();
    let mut want = vec![
        "token github pat erin git_config /home/erin/projects/app/.git/config remote.origin.url (line 4)",
        "token github pat erin git_config /home/erin/projects/app/.git/config http.https://github.com.extraheader (line 13)",
        "token huggingface api_key erin git_config /home/erin/src/model/.git/config remote.origin.url (line 2)",
        "token huggingface api_key erin git_config /home/erin/src/model/.git/config http.https://huggingface.co.extraheader (line 4)",
        "token github pat erin git_config /home/erin/.git/config url.<base>.insteadof (line 2)",
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);

    let opts = ScanOptions {
        root: t.path().to_path_buf(),
        processes: false,
        limits: Limits::default(),
        activity: Default::default(),
    };
    let r = run(&opts, &catalog, &fp()).unwrap();
    let out = format!("{}\n{}\n{:?}", report::to_json(&r), report::to_table(&r), r);
    for s in
        [ghp, ghp_vendored, ghp_fetch_head, ghs, hf, pw_internal, pw_hf, pw_rewrite, glpat, basic.as_str()]
    {
        assert!(!out.contains(s), "a .git/config credential leaked into scan output");
    }
}

/// Cursor's state database: a running editor's newest token sits in the write-ahead log,
/// and a database over the size bound is reported, not read.
#[test]
fn cursor_state_database_log_and_bound() {
    use sightline_agent::secret::Secret;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("home/fay/.config/Cursor/User/globalStorage");
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (
        "eyJhbGciOiJIUzI1NiJ9.b2xkLXRva2VuLTAx.c2lnbmF0dXJlMDE",
        "eyJhbGciOiJIUzI1NiJ9.bmV3LXRva2VuLTAy.c2lnbmF0dXJlMDI",
    );
    let conn = rusqlite::Connection::open(dir.join("state.vscdb")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
         INSERT INTO ItemTable VALUES ('cursorAuth/accessToken', '{old}');
         PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         INSERT INTO ItemTable VALUES ('cursorAuth/accessToken', '{new}');"
    ))
    .unwrap();
    assert!(dir.join("state.vscdb-wal").exists());

    let catalog = Catalog::builtin().unwrap();
    let tree = Tree::open_root(t.path()).unwrap();
    let scan = scan_files(&tree, &catalog, &fp(), &Limits::default());
    let fps: Vec<&str> = scan
        .findings
        .iter()
        .filter_map(|f| if let Finding::Token(t) = f { Some(t.fingerprint.as_str()) } else { None })
        .collect();
    assert_eq!(fps, [fp().fingerprint(&Secret::new(new)).as_str()], "the log's committed value wins");
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);

    let small = Limits { database_file: 1024, ..Limits::default() };
    let scan = scan_files(&tree, &catalog, &fp(), &small);
    assert!(scan.findings.is_empty());
    assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
    assert!(
        scan.errors[0].path.ends_with("/state.vscdb") && scan.errors[0].error.contains("limit"),
        "{:?}",
        scan.errors
    );
    drop(conn);
}

/// A URL-keyed `.git/config` section names its setting by origin only: a credential in the
/// section's query or (raw, unencoded) userinfo never reaches a locator or any output.
#[test]
fn git_config_locators_show_only_the_origin() {
    let hf = "hf_Qm7Rt2Wx9Zp4Lk8Jh3Gf6Ds1Az5Xc0Vb2Nm";
    let ghs = "ghs_R0CsTy4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4";
    let (in_query, in_userinfo) = ("S3cr3tQueryVal77", "ssW0rdRaw99");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{ghs}"));
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("home/gil/proj/.git/config");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[http \"https://huggingface.co/x?access_token={in_query}\"]\n\textraHeader = Authorization: Bearer {hf}\n\
             [http \"https://u:Pa/{in_userinfo}@github.com/r\"]\n\textraheader = AUTHORIZATION: basic {basic}\n"
        ),
    )
    .unwrap();
    let catalog = Catalog::builtin().unwrap();
    let tree = Tree::open_root(t.path()).unwrap();
    let scan = scan_files(&tree, &catalog, &fp(), &Limits::default());
    let mut got: Vec<String> = scan.findings.iter().map(summary).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "token github pat gil git_config /home/gil/proj/.git/config http.https://github.com.extraheader (line 4)",
            "token huggingface api_key gil git_config /home/gil/proj/.git/config http.https://huggingface.co.extraheader (line 2)",
        ]
    );
    let opts = ScanOptions {
        root: t.path().to_path_buf(),
        processes: false,
        limits: Limits::default(),
        activity: Default::default(),
    };
    let r = run(&opts, &catalog, &fp()).unwrap();
    let out = format!("{}\n{}\n{:?}\n{:?}", report::to_json(&r), report::to_table(&r), r, scan.errors);
    for s in [hf, ghs, basic.as_str(), in_query, in_userinfo, "Pa/"] {
        assert!(!out.contains(s), "{s} leaked into scan output");
    }
}

/// A binary plist of shared references (each of 30 arrays refers to the next twice: 2^30
/// values from ~120 bytes) is refused after a bounded walk, as a LaunchAgent and as an
/// app's `Info.plist`, and the rest of the scan goes on.
#[test]
fn plists_that_expand_without_bound_are_refused() {
    // `bplist00`, the objects, the offset table and the 32-byte trailer (offset and
    // reference sizes 1; object count, top object, table offset as big-endian u64s).
    let mut bomb = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    for i in 0..30u8 {
        offsets.push(bomb.len() as u8);
        bomb.extend_from_slice(&[0xA2, i + 1, i + 1]);
    }
    offsets.push(bomb.len() as u8);
    bomb.extend_from_slice(&[0x51, b'x']);
    let table = bomb.len() as u64;
    bomb.extend_from_slice(&offsets);
    bomb.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 1]);
    for n in [offsets.len() as u64, 0, table] {
        bomb.extend_from_slice(&n.to_be_bytes());
    }
    let t = tempfile::tempdir().unwrap();
    let put = |rel: &str, bytes: &[u8]| {
        let p = t.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    put("Users/hal/Library/LaunchAgents/com.example.bomb.plist", &bomb);
    put("Applications/Bomb.app/Contents/Info.plist", &bomb);
    put("Users/hal/.zshrc", b"export OPENAI_API_KEY=sk-proj-Zq8Wd3Lm5Rt1Yx7Kc2Vb9Nh4Gf6Jp0Ts3Ae\n");
    let catalog = Catalog::builtin().unwrap();
    let tree = Tree::open_root(t.path()).unwrap();
    let scan = scan_files(&tree, &catalog, &fp(), &Limits::default());
    let mut errors: Vec<String> = scan.errors.iter().map(|e| format!("{}: {}", e.path, e.error)).collect();
    errors.sort();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("/Applications/Bomb.app/Contents/Info.plist: malformed Info.plist"),
        "{errors:?}"
    );
    assert!(
        errors[1]
            .starts_with("/Users/hal/Library/LaunchAgents/com.example.bomb.plist: malformed LaunchAgent")
    );
    assert!(errors.iter().all(|e| e.contains("more than 100000 values")), "{errors:?}");
    assert!(scan.findings.iter().any(|f| summary(f).contains(".zshrc")), "the rest of the scan went on");
}
