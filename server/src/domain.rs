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
    /// A person: reads the connectors they own or hold, asks for their approval and
    /// withdraws their own requests. The token is bound to the person when made.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Scim => "scim",
            Role::Ingest => "ingest",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Admin, Role::Scim, Role::Ingest, Role::Owner]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    pub fn can_read(self) -> bool {
        matches!(self, Role::Viewer | Role::Admin)
    }
}

/// An enum whose values have one spelling in storage, on the wire's JSON and in exports:
/// `as_str` gives it, `parse` takes it back (None for a spelling this version does not know).
macro_rules! spelled {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled! {
    /// What an observation says about its item relative to the agent's last report.
    pub enum Change {
        /// A change value this collector does not know (a newer agent's).
        Unspecified = "unspecified",
        /// Part of a full picture (after enrollment or a resync).
        Snapshot = "snapshot",
        Appeared = "appeared",
        Changed = "changed",
        Disappeared = "disappeared",
    }
}

impl Change {
    /// Whether this observation ends its connector's presence at its locus; every other
    /// change is a sighting, which opens presence if none is open.
    pub fn ends_presence(self) -> bool {
        self == Change::Disappeared
    }
}

spelled! {
    /// What an observation is about.
    pub enum ObservationKind {
        Process = "process",
        App = "app",
        Extension = "extension",
        Token = "token",
        McpServer = "mcp_server",
        OsSession = "os_session",
        DeviceInventory = "device_inventory",
        AgentHealth = "agent_health",
        Gap = "gap",
        ScanError = "scan_error",
        DirectiveOutcome = "directive_outcome",
        /// One AI tool session from the tool's own records (metadata only).
        Activity = "activity",
        /// An observation without an item (a newer agent's kind).
        Unknown = "unknown",
    }
}

spelled! {
    /// What an agent reported doing with a directive.
    pub enum Outcome {
        /// The action was taken.
        Enforced = "enforced",
        /// Report mode: nothing changed; the detail says what would have been done.
        ReportOnly = "report_only",
        /// The target is not on the device (any more).
        NotPresent = "not_present",
        /// Not possible there (platform, browser, file kind).
        Unsupported = "unsupported",
        Failed = "failed",
        /// The agent refused the directive (signature, device, expiry).
        Refused = "refused",
        /// Set by the collector, not an agent: the revocation was withdrawn before the
        /// agent answered.
        Withdrawn = "withdrawn",
        Unspecified = "unspecified",
    }
}

impl Outcome {
    /// Whether the device is done with the connector: it enforced the revocation or no
    /// longer has what was to be revoked.
    pub fn settles_revocation(self) -> bool {
        matches!(self, Outcome::Enforced | Outcome::NotPresent)
    }
}

spelled! {
    /// Where a revocation stands, from the latest directive to each device it was issued to.
    pub enum RevocationProgress {
        /// An agent has not answered yet.
        Pending = "pending",
        /// Every device enforced it or no longer has the connector.
        Enforced = "enforced",
        /// Some agent only reported, could not or would not act.
        Incomplete = "incomplete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back_as_itself() {
        for c in Change::ALL {
            assert_eq!(Change::parse(c.as_str()), Some(*c));
        }
        for k in ObservationKind::ALL {
            assert_eq!(ObservationKind::parse(k.as_str()), Some(*k));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        assert_eq!(Change::parse("vanished"), None);
    }

    #[test]
    fn the_spellings_are_those_on_record() {
        // Stored rows, exports and the API carry these words; changing one is a migration.
        assert_eq!(Change::Disappeared.as_str(), "disappeared");
        assert_eq!(ObservationKind::McpServer.as_str(), "mcp_server");
        assert_eq!(Outcome::ReportOnly.as_str(), "report_only");
        assert!(Change::Disappeared.ends_presence() && !Change::Snapshot.ends_presence());
        assert!(Outcome::NotPresent.settles_revocation() && !Outcome::ReportOnly.settles_revocation());
    }
}
