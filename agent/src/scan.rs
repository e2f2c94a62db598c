//! One full scan: the file detectors over a tree, live processes, and the device facts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::catalog::Catalog;
use crate::detect::{self, Finding, Limits, Os, ScanError};
use crate::fsview::Tree;
use crate::secret::Fingerprinter;

#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// `/` in production, or a directory holding a filesystem image.
    pub root: PathBuf,
    pub processes: bool,
    pub limits: Limits,
    /// `activity` and `activity_paths` as configured: `scan` honours them like `run`.
    pub activity: detect::activity::Settings,
}

/// The device a scan describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub hostname: String,
    pub os: Os,
    pub os_version: String,
}

#[derive(Debug)]
pub struct ScanReport {
    pub device: DeviceInfo,
    pub users: Vec<String>,
    pub findings: Vec<Finding>,
    pub errors: Vec<ScanError>,
    /// AI activity sessions read from the tools' own records (metadata only).
    pub activity: Vec<detect::activity::Session>,
    pub duration: Duration,
    pub org_keyed: bool,
}

/// Runs a full scan. Blocking (filesystem walk, process table): call it from a blocking
/// thread when inside the async runtime.
#[allow(clippy::disallowed_types, reason = "measures a synchronous scan")]
pub fn run(opts: &ScanOptions, catalog: &Catalog, fp: &Fingerprinter) -> anyhow::Result<ScanReport> {
    let started = std::time::Instant::now();
    let root =
        Tree::open_root(&opts.root).with_context(|| format!("opening scan root {}", opts.root.display()))?;
    let files = detect::scan_files_with(&root, catalog, fp, &opts.limits, opts.activity);
    let os = files.os.unwrap_or(Os::Linux);
    let mut findings = files.findings;
    if opts.processes {
        findings.extend(detect::processes::detect(catalog, &detect::processes::list()));
    }
    let live = is_live_root(&opts.root);
    Ok(ScanReport {
        device: device_info(&root, live, os),
        users: files.users,
        findings,
        errors: files.errors,
        activity: files.activity,
        duration: started.elapsed(),
        org_keyed: fp.org_keyed,
    })
}

/// The running machine's identity as enrollment and every stream's claims report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFacts {
    pub device: DeviceInfo,
    pub serial: Option<String>,
    pub machine_id: Option<String>,
    pub boot_id: Option<String>,
}

/// Reads [`LiveFacts`] from this machine. Blocking (small file reads).
pub fn live_facts() -> anyhow::Result<LiveFacts> {
    let root = Tree::open_root(Path::new("/")).context("opening /")?;
    let os = detect::detect_os(&root);
    let read =
        |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    Ok(LiveFacts {
        device: device_info(&root, true, os),
        serial: read("/sys/class/dmi/id/product_serial"),
        machine_id: read("/etc/machine-id"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
    })
}

fn is_live_root(root: &Path) -> bool {
    root.canonicalize().map(|p| p == Path::new("/")).unwrap_or(false)
}

/// Hostname and OS version: from the running system when scanning `/`, otherwise from the
/// image where it records them.
pub fn device_info(root: &Tree, live: bool, os: Os) -> DeviceInfo {
    let small = 64 * 1024;
    let from_tree_host = match os {
        Os::Macos => root
            .read(Path::new("Library/Preferences/SystemConfiguration/preferences.plist"), small)
            .ok()
            .and_then(|b| crate::plist_bounded::from_bytes(&b).ok())
            .and_then(|v| mac_hostname(&v)),
        _ => root.read_text(Path::new("etc/hostname"), small).ok(),
    }
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty());
    let hostname = if live { sysinfo::System::host_name() } else { from_tree_host.clone() }
        .or(from_tree_host)
        .or_else(sysinfo::System::host_name)
        .unwrap_or_else(|| "unknown".into());
    let from_tree_version = match os {
        Os::Linux => root.read_text(Path::new("etc/os-release"), small).ok().and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_owned())
        }),
        Os::Macos => root
            .read(Path::new("System/Library/CoreServices/SystemVersion.plist"), small)
            .ok()
            .and_then(|b| crate::plist_bounded::from_bytes(&b).ok()?.into_dictionary())
            .and_then(|d| d.get("ProductVersion").and_then(|v| v.as_string()).map(str::to_owned)),
        Os::Windows => None,
    };
    let os_version =
        if live { sysinfo::System::long_os_version().or(from_tree_version) } else { from_tree_version }
            .unwrap_or_else(|| "unknown".into());
    DeviceInfo { hostname, os, os_version }
}

/// `System.System.ComputerName`, else `System.Network.HostNames.LocalHostName`.
fn mac_hostname(prefs: &plist::Value) -> Option<String> {
    let system = prefs.as_dictionary()?.get("System")?.as_dictionary()?;
    let computer = system.get("System").and_then(|s| s.as_dictionary()?.get("ComputerName")?.as_string());
    let local = || {
        system
            .get("Network")?
            .as_dictionary()?
            .get("HostNames")?
            .as_dictionary()?
            .get("LocalHostName")?
            .as_string()
    };
    computer.or_else(local).map(str::to_owned)
}

/// The live machine's filesystem root: `/`, or the system drive on Windows (`C:\`, not
/// the root of whatever drive the working directory is on).
pub fn default_root() -> PathBuf {
    if cfg!(windows) {
        let drive = std::env::var_os("SystemDrive").unwrap_or_else(|| "C:".into());
        let mut root = PathBuf::from(drive);
        root.push("\\");
        root
    } else {
        PathBuf::from("/")
    }
}
