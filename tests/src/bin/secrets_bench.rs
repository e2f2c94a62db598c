//! Credential detection compared with two established secret scanners, in one run.
//!
//! `scripts/bench-secrets.sh` installs the peers and runs this. It generates a developer's
//! home (thousands of files: code, lockfiles, notebooks, configs, dotfiles), plants AI
//! credentials where people leave them, plus non-AI secrets, placeholders and high-entropy
//! noise, then runs `sightline-agent scan`, `detect-secrets scan --all-files` and `secretlint`
//! over it under GNU time. For each: wall time, peak RSS, planted AI credentials found, and
//! false positives (reported places holding no planted AI credential).
//!
//! Matching: the agent reports no values, so its findings are matched by fingerprint (the
//! bench holds the fingerprint key of the scan's state dir); the peers report file and line.
//!
//! Environment: SIGHTLINE_AGENT, DETECT_SECRETS, SECRETLINT (binaries), BENCH_PROJECTS
//! (default 120), or the same as flags (`--help`). Everything is local files; no network.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::Parser;
use serde_json::Value;

/// A deterministic generator (splitmix64), so every run scans the same home.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char).collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        loop {
            let s = self.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", n);
            let lower = s.to_ascii_lowercase();
            if s.bytes().any(|b| b.is_ascii_digit())
                && s.bytes().any(|b| b.is_ascii_alphabetic())
                && !["xxxx", "todo", "your", "example", "dummy", "insert", "redacted", "replace"]
                    .iter()
                    .any(|w| lower.contains(w))
            {
                return s;
            }
        }
    }
    fn hex(&mut self, n: usize) -> String {
        self.pick(b"0123456789abcdef", n)
    }
    fn b64(&mut self, n: usize) -> String {
        self.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", n)
    }
}

/// One planted AI credential: where it is and its value.
struct Planted {
    path: String,
    line: usize,
    value: String,
}

struct Home {
    root: PathBuf,
    planted: Vec<Planted>,
    files: usize,
}

impl Home {
    fn write(&mut self, rel: &str, text: &str) -> anyhow::Result<()> {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().context("path has a parent")?)?;
        std::fs::write(&p, text)?;
        self.files += 1;
        Ok(())
    }

    /// Writes a file and records every planted value in it by line.
    fn write_planted(&mut self, rel: &str, text: &str, values: &[String]) -> anyhow::Result<()> {
        for v in values {
            let line =
                text.lines().position(|l| l.contains(v.as_str())).context("planted value in text")? + 1;
            self.planted.push(Planted { path: rel.to_owned(), line, value: v.clone() });
        }
        self.write(rel, text)
    }
}

fn generate(root: &Path, projects: usize) -> anyhow::Result<Home> {
    let mut r = Rng(0x5eed_1e55);
    let mut h = Home { root: root.to_owned(), planted: Vec::new(), files: 0 };
    let openai = |r: &mut Rng| format!("sk-proj-{}T3BlbkFJ{}", r.alnum(74), r.alnum(74));
    let anthropic = |r: &mut Rng| format!("sk-ant-api03-{}AA", r.alnum(93));

    // Dotfiles and credential files in the home.
    let (k1, k2, k3) = (openai(&mut r), anthropic(&mut r), r.alnum(32));
    h.write_planted(
        ".bashrc",
        &format!(
            "export PATH=$HOME/bin:$PATH\nexport OPENAI_API_KEY={k1}\nexport AWS_ACCESS_KEY_ID=AKIA{}\nexport AWS_SECRET_ACCESS_KEY={}\nexport ANTHROPIC_API_KEY=sk-ant-your-key-here\n",
            r.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
            r.b64(40)
        ),
        std::slice::from_ref(&k1),
    )?;
    h.write_planted(
        ".zshrc",
        &format!("export ANTHROPIC_API_KEY={k2}\nexport MISTRAL_API_KEY={k3}\nalias k=kubectl\n"),
        &[k2, k3],
    )?;
    let (a, b) = (format!("sk-ant-oat01-{}", r.alnum(95)), format!("sk-ant-ort01-{}", r.alnum(95)));
    let creds = serde_json::to_string_pretty(
        &serde_json::json!({"claudeAiOauth": {"accessToken": a, "refreshToken": b, "expiresAt": 1_893_456_000_000u64}}),
    )?;
    h.write_planted(".claude/.credentials.json", &creds, &[a, b])?;
    let k = openai(&mut r);
    h.write_planted(
        ".codex/auth.json",
        &serde_json::to_string_pretty(&serde_json::json!({"OPENAI_API_KEY": k}))?,
        &[k],
    )?;
    let k = format!("hf_{}", r.alnum(34));
    h.write_planted(".cache/huggingface/token", &format!("{k}\n"), &[k])?;
    let k = format!("ghp_{}", r.alnum(36));
    let mcp = serde_json::to_string_pretty(
        &serde_json::json!({"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": k}}}}),
    )?;
    h.write_planted(".cursor/mcp.json", &mcp, &[k])?;
    h.write(".npmrc", &format!("//registry.npmjs.org/:_authToken=npm_{}\n", r.alnum(36)))?;
    h.write(
        ".ssh/id_ed25519",
        &format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n", r.b64(280)),
    )?;

    // History, editor settings and .netrc: where keys that were "only exported once" or
    // pasted into an extension's settings live on (their own generator, so the values above
    // stay as they were).
    let mut r2 = Rng(0x4157_0219);
    let (k1, k2, k3) = (openai(&mut r2), anthropic(&mut r2), format!("gsk_{}", r2.alnum(52)));
    let mut bash = String::new();
    for i in 0..400 {
        bash += &match i {
            57 => format!("export OPENAI_API_KEY={k1}\n"),
            203 => format!(
                "curl https://api.anthropic.com/v1/messages -H \"x-api-key: {k2}\" -H \"anthropic-version: 2023-06-01\"\n"
            ),
            311 => "echo $OPENAI_API_KEY\n".to_owned(),
            312 => "export ANTHROPIC_API_KEY=sk-ant-...\n".to_owned(),
            // A non-AI secret (GitHub tokens are in scope: Copilot and MCP servers use them).
            313 => format!("export AWS_SECRET_ACCESS_KEY={}\n", r2.b64(40)),
            _ => format!("git commit -m \"change {}\"\n", r2.hex(8)),
        };
    }
    h.write_planted(".bash_history", &bash, &[k1, k2])?;
    h.write_planted(
        ".zsh_history",
        &format!(
            ": 1764800000:0;cd ~/src\n: 1764800010:0;export GROQ_API_KEY={k3}\n: 1764800020:0;export GROQ_API_KEY=$(pass groq)\n"
        ),
        &[k3],
    )?;
    let k = openai(&mut r2);
    h.write_planted(
        ".config/Code/User/settings.json",
        &format!(
            "{{\n  // editor\n  \"editor.fontSize\": 13,\n  \"chatgpt.apiKey\": \"{k}\",\n  \"openai.apiKey\": \"${{env:OPENAI_API_KEY}}\",\n}}\n"
        ),
        &[k],
    )?;
    let k = anthropic(&mut r2);
    h.write_planted(
        ".netrc",
        &format!(
            "machine github.com login dev password {}\nmachine api.anthropic.com login dev password {k}\n",
            r2.alnum(40)
        ),
        &[k],
    )?;

    for p in 0..projects {
        let dir = format!("src/project{p:03}");
        // Code with the ordinary noise of a repository.
        for f in 0..12 {
            let mut code = String::new();
            for i in 0..30 {
                code += &match (i + f + p) % 6 {
                    0 => format!("const id{i} = \"{}\";\n", uuid(&mut r)),
                    1 => format!("const digest{i} = \"{}\";\n", r.hex(64)),
                    2 => format!("const blob{i} = \"{}\";\n", r.b64(44)),
                    3 => format!("function f{i}(x) {{ return x * {}; }}\n", r.next() % 1000),
                    4 => format!("// see https://example.org/{}/{}\n", r.alnum(8), r.hex(12)),
                    _ => format!("const commit{i} = \"{}\";\n", r.hex(40)),
                };
            }
            h.write(&format!("{dir}/src/module{f}.js"), &code)?;
        }
        let mut lock = String::from("{\n  \"packages\": {\n");
        for i in 0..40 {
            lock += &format!(
                "    \"node_modules/dep{i}\": {{\"version\": \"1.{i}.0\", \"integrity\": \"sha512-{}==\"}},\n",
                r.b64(86)
            );
        }
        lock += "    \"\": {}\n  }\n}\n";
        h.write(&format!("{dir}/package-lock.json"), &lock)?;
        h.write(
            &format!("{dir}/package.json"),
            &format!("{{\"name\": \"project{p}\", \"version\": \"1.0.0\"}}\n"),
        )?;
        h.write(&format!("{dir}/README.md"), "# Project\n\nSet `OPENAI_API_KEY=sk-...` in `.env`.\n")?;
        h.write(
            &format!("{dir}/config.yaml"),
            &format!(
                "server:\n  port: 8080\n  session_secret: {}\ndatabase:\n  url: postgres://app:{}@db/app\n",
                r.alnum(40),
                r.alnum(16)
            ),
        )?;
        h.write(
            &format!("{dir}/tests/test_api.py"),
            &format!(
                "TOKEN = \"eyJ{}.{}.{}\"\nAPI_KEY = \"sk-xxxxxxxxxxxxxxxxxxxxxxxx\"\n",
                r.b64(36),
                r.b64(80),
                r.b64(43)
            ),
        )?;
        h.write(
            &format!("{dir}/node_modules/dep/index.js"),
            &format!("module.exports = \"{}\";\n", r.hex(64)),
        )?;
        // Planted AI credentials: every third project has a .env, every fifth a script,
        // every seventh a notebook, every eleventh an MCP config.
        if p % 3 == 0 {
            let (g, m) = (format!("gsk_{}", r.alnum(52)), r.alnum(32));
            let text = format!(
                "NODE_ENV=development\nGROQ_API_KEY={g}\nMISTRAL_API_KEY={m}\nSTRIPE_SECRET_KEY=sk_live_{}\nAWS_SECRET_ACCESS_KEY={}\nOPENAI_API_KEY=sk-your-key-here\n",
                r.alnum(24),
                r.b64(40)
            );
            h.write_planted(&format!("{dir}/.env"), &text, &[g, m])?;
            h.write(&format!("{dir}/.env.example"), "GROQ_API_KEY=gsk_your_key_here\nMISTRAL_API_KEY=\n")?;
        }
        if p % 5 == 0 {
            let k = anthropic(&mut r);
            let text = format!(
                "import anthropic\n\nclient = anthropic.Anthropic(api_key=\"{k}\")\nprint(client.models.list())\n"
            );
            h.write_planted(&format!("{dir}/scripts/try_claude.py"), &text, &[k])?;
        }
        if p % 7 == 0 {
            let k = openai(&mut r);
            let text = format!(
                "{{\n \"cells\": [\n  {{\"cell_type\": \"code\", \"source\": [\"from openai import OpenAI\\n\", \"client = OpenAI(api_key=\\\"{k}\\\")\\n\"]}}\n ],\n \"nbformat\": 4\n}}\n"
            );
            h.write_planted(&format!("{dir}/notebooks/explore.ipynb"), &text, &[k])?;
        }
        if p % 11 == 0 {
            let k = format!("xai-{}", r.alnum(80));
            let text = format!(
                "{{\n  \"mcpServers\": {{\n    \"grok\": {{\n      \"command\": \"uvx\",\n      \"env\": {{\"XAI_API_KEY\": \"{k}\"}}\n    }}\n  }}\n}}\n"
            );
            h.write_planted(&format!("{dir}/.mcp.json"), &text, &[k])?;
        }
    }
    Ok(h)
}

struct WorkDir(PathBuf);

impl WorkDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

fn uuid(r: &mut Rng) -> String {
    format!("{}-{}-4{}-a{}-{}", r.hex(8), r.hex(4), r.hex(3), r.hex(3), r.hex(12))
}

struct Run {
    wall_s: f64,
    peak_mib: f64,
    stdout: String,
}

/// Runs a command under GNU time for wall time and peak RSS.
fn timed(cmd: &mut Command, cwd: &Path) -> anyhow::Result<Run> {
    let stats = tempfile::NamedTempFile::new()?;
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(stats.path())
        .arg(&program)
        .args(&args)
        .current_dir(cwd)
        .output()
        .with_context(|| format!("running {program:?} (is GNU time installed?)"))?;
    let s = std::fs::read_to_string(stats.path())?;
    let last = s.lines().last().unwrap_or_default().to_owned();
    let mut it = last.split_whitespace();
    let wall_s: f64 = it
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("time output {s:?}, stderr {}", String::from_utf8_lossy(&out.stderr)))?;
    let peak_kib: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    Ok(Run { wall_s, peak_mib: peak_kib / 1024.0, stdout: String::from_utf8_lossy(&out.stdout).into_owned() })
}

/// The class of place a planted credential is in, for the per-class table.
fn class_of(path: &str) -> &'static str {
    if path.starts_with("src/") {
        "projects"
    } else if path.ends_with("_history") {
        "history"
    } else if path.ends_with("settings.json") {
        "settings"
    } else {
        "dotfiles"
    }
}

/// (found planted, false positives) for reports given as (path relative to home, line).
fn score_by_place(home: &Home, reported: &HashSet<(String, usize)>) -> (usize, usize) {
    let planted: HashSet<(String, usize)> = home.planted.iter().map(|p| (p.path.clone(), p.line)).collect();
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        let missed: Vec<_> = home
            .planted
            .iter()
            .filter(|p| !reported.contains(&(p.path.clone(), p.line)))
            .take(8)
            .map(|p| (&p.path, p.line))
            .collect();
        let sample: Vec<_> = reported.iter().take(8).collect();
        eprintln!("missed (first 8): {missed:?}\nreported (sample): {sample:?}");
    }
    let found = home.planted.iter().filter(|p| reported.contains(&(p.path.clone(), p.line))).count();
    let fp = reported.iter().filter(|r| !planted.contains(*r)).count();
    (found, fp)
}

/// Credential detection of `sightline-agent scan` vs detect-secrets and secretlint.
///
/// All three scan one generated developer home under GNU time: wall time, peak RSS, planted AI
/// credentials found and false positives. scripts/bench-secrets.sh installs the peers and runs
/// this. Each option can be given by its environment variable instead.
#[derive(Parser)]
#[command(
    name = "sightline-secrets-bench",
    after_help = "Environment: BENCH_KEEP (any value) leaves the generated home in place for inspection; \
                  BENCH_VERBOSE (any value) prints missed and reported places."
)]
struct Args {
    /// The sightline-agent binary.
    #[arg(long, value_name = "PATH", env = "SIGHTLINE_AGENT")]
    agent: PathBuf,
    /// The detect-secrets binary.
    #[arg(long, value_name = "PATH", env = "DETECT_SECRETS")]
    detect_secrets: PathBuf,
    /// The secretlint binary.
    #[arg(long, value_name = "PATH", env = "SECRETLINT")]
    secretlint: PathBuf,
    /// Projects generated in the home.
    #[arg(long, value_name = "N", env = "BENCH_PROJECTS", default_value_t = 120)]
    projects: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { agent, detect_secrets, secretlint, projects } = Args::parse();

    let work = tempfile::tempdir()?;
    // BENCH_KEEP=1 leaves the generated home in place for inspection.
    let work_path =
        if std::env::var_os("BENCH_KEEP").is_some() { work.keep() } else { work.path().to_owned() };
    let work = WorkDir(work_path);
    let home_rel = "home/dev";
    let home = generate(&work.path().join(home_rel), projects)?;
    println!(
        "home: {} files, {} AI credentials planted (plus non-AI secrets, placeholders, noise)\n",
        home.files,
        home.planted.len()
    );

    // sightline-agent, with a state dir whose fingerprint key the bench can read.
    let state = work.path().join("state");
    let ours = timed(
        Command::new(&agent)
            .args(["scan", "--no-processes", "--format", "json", "--root"])
            .arg(work.path())
            .arg("--state-dir")
            .arg(&state),
        work.path(),
    )?;
    let key = std::fs::read(state.join("local-fingerprint.key"))?;
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let fp_of = |v: &str| hex::encode(&ring::hmac::sign(&hmac, v.as_bytes()).as_ref()[..16]);
    let planted_fps: HashSet<String> = home.planted.iter().map(|p| fp_of(&p.value)).collect();
    let doc: Value = serde_json::from_str(&ours.stdout).context("agent JSON")?;
    let tokens: Vec<&Value> =
        doc["findings"].as_array().into_iter().flatten().filter(|f| f["kind"] == "token").collect();
    let reported: HashSet<String> =
        tokens.iter().filter_map(|t| t["fingerprint"].as_str().map(str::to_owned)).collect();
    let ours_found = planted_fps.intersection(&reported).count();
    let ours_fp =
        tokens.iter().filter(|t| !t["fingerprint"].as_str().is_some_and(|f| planted_fps.contains(f))).count();

    // detect-secrets: a baseline JSON of {results: {file: [{line_number, type}]}}.
    let ds = timed(Command::new(&detect_secrets).args(["scan", "--all-files", "."]), &home.root)?;
    let ds_doc: Value = serde_json::from_str(&ds.stdout).context("detect-secrets JSON")?;
    let mut ds_places = HashSet::new();
    for (file, hits) in ds_doc["results"].as_object().into_iter().flatten() {
        for hit in hits.as_array().into_iter().flatten() {
            if let Some(line) = hit["line_number"].as_u64() {
                ds_places.insert((file.trim_start_matches("./").to_owned(), line as usize));
            }
        }
    }
    let (ds_found, ds_fp) = score_by_place(&home, &ds_places);

    // secretlint with its recommended preset, dotfiles included.
    let rc = work.path().join("secretlintrc.json");
    std::fs::write(&rc, r#"{"rules": [{"id": "@secretlint/secretlint-rule-preset-recommend"}]}"#)?;
    let sl = timed(
        Command::new(&secretlint).args(["--format", "json", "--secretlintrc"]).arg(&rc).args([
            "**/*",
            "**/.*",
            "**/.*/**/*",
        ]),
        &home.root,
    )?;
    let sl_doc: Value = serde_json::from_str(&sl.stdout).unwrap_or(Value::Array(Vec::new()));
    let mut sl_places = HashSet::new();
    for file in sl_doc.as_array().into_iter().flatten() {
        let path = file["filePath"].as_str().unwrap_or_default();
        let rel = Path::new(path)
            .strip_prefix(&home.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_owned());
        for m in file["messages"].as_array().into_iter().flatten() {
            if let Some(line) = m["loc"]["start"]["line"].as_u64().or_else(|| m["line"].as_u64()) {
                sl_places.insert((rel.clone(), line as usize));
            }
        }
    }
    let (sl_found, sl_fp) = score_by_place(&home, &sl_places);

    let n = home.planted.len();
    let rows = [
        ("sightline-agent scan", &ours, ours_found, ours_fp),
        ("detect-secrets 1.5 --all-files", &ds, ds_found, ds_fp),
        ("secretlint 13 (preset-recommend)", &sl, sl_found, sl_fp),
    ];
    println!(
        "{:<34} {:>9} {:>10} {:>14} {:>16}",
        "scanner", "wall (s)", "peak MiB", "AI found", "false positives"
    );
    for (name, run, found, fp) in &rows {
        println!("{name:<34} {:>9.2} {:>10.1} {:>9} / {n:<3} {:>16}", run.wall_s, run.peak_mib, found, fp);
    }
    // Found per class of place, so a gain or a miss in one class is not hidden in the total.
    let ours_places: HashSet<(String, usize)> = home
        .planted
        .iter()
        .filter(|p| reported.contains(&fp_of(&p.value)))
        .map(|p| (p.path.clone(), p.line))
        .collect();
    println!(
        "\n{:<34} {:>12} {:>12} {:>12} {:>12}",
        "found by class", "dotfiles", "history", "settings", "projects"
    );
    for (name, places) in
        [("sightline-agent scan", &ours_places), ("detect-secrets", &ds_places), ("secretlint", &sl_places)]
    {
        let mut cells = Vec::new();
        for class in ["dotfiles", "history", "settings", "projects"] {
            let of: Vec<&Planted> = home.planted.iter().filter(|p| class_of(&p.path) == class).collect();
            let found = of.iter().filter(|p| places.contains(&(p.path.clone(), p.line))).count();
            cells.push(format!("{found} / {}", of.len()));
        }
        println!("{name:<34} {:>12} {:>12} {:>12} {:>12}", cells[0], cells[1], cells[2], cells[3]);
    }
    println!(
        "\nspeed: sightline is {:.1}x faster than detect-secrets and {:.1}x faster than secretlint",
        ds.wall_s / ours.wall_s.max(0.005),
        sl.wall_s / ours.wall_s.max(0.005)
    );
    println!(
        "(wall times come from GNU time with 10 ms resolution; the agent's is floored at 5 ms for the ratios)"
    );
    Ok(())
}
