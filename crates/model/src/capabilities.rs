//! What an application token may do: Svix's app-portal capabilities, kept with the token.

/// One thing an application token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read the application, its endpoints (not their secrets), messages and attempts,
    /// and the event types. Every token has it.
    ViewBase,
    /// Read an endpoint's signing secret.
    ViewEndpointSecret,
    /// Rotate (and read) an endpoint's signing secret.
    ManageEndpointSecret,
    /// Change an endpoint's filter and transform.
    ManageTransformations,
    /// Send deliveries again (resend, recover).
    CreateAttempts,
    /// Create, change and delete endpoints, every field (secrets included).
    ManageEndpoint,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::ViewBase,
        Capability::ViewEndpointSecret,
        Capability::ManageEndpointSecret,
        Capability::ManageTransformations,
        Capability::CreateAttempts,
        Capability::ManageEndpoint,
    ];

    /// Svix's name of the capability.
    pub fn name(self) -> &'static str {
        match self {
            Capability::ViewBase => "ViewBase",
            Capability::ViewEndpointSecret => "ViewEndpointSecret",
            Capability::ManageEndpointSecret => "ManageEndpointSecret",
            Capability::ManageTransformations => "ManageTransformations",
            Capability::CreateAttempts => "CreateAttempts",
            Capability::ManageEndpoint => "ManageEndpoint",
        }
    }

    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of capabilities; stored as its bits (`bits`, `from_bits`), which never change
/// meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities(u8);

impl Capabilities {
    /// Everything: what a token minted without capabilities may do.
    pub const ALL: Capabilities = Capabilities(0b11_1111);

    pub fn of(capabilities: impl IntoIterator<Item = Capability>) -> Capabilities {
        Capabilities(capabilities.into_iter().fold(0, |bits, c| bits | c.bit()))
    }

    /// The set stored as `bits`; unknown bits are dropped.
    pub fn from_bits(bits: i64) -> Capabilities {
        Capabilities((bits & i64::from(Self::ALL.0)) as u8)
    }

    pub fn bits(self) -> i64 {
        i64::from(self.0)
    }

    pub fn has(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Whether any of `capabilities` is in the set.
    pub fn any(self, capabilities: &[Capability]) -> bool {
        capabilities.iter().any(|c| self.has(*c))
    }

    /// Svix's names of the capabilities in the set, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.has(*c))
            .map(Capability::name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_keep_their_members_through_their_bits() {
        let set = Capabilities::of([Capability::ViewBase, Capability::CreateAttempts]);
        assert_eq!(set.names(), ["ViewBase", "CreateAttempts"]);
        assert_eq!(Capabilities::from_bits(set.bits()), set);
        assert!(set.has(Capability::CreateAttempts) && !set.has(Capability::ManageEndpoint));
        assert_eq!(Capabilities::ALL.names().len(), 6);
        assert_eq!(Capabilities::from_bits(0x7fff), Capabilities::ALL);
        for c in Capability::ALL {
            assert_eq!(Capability::parse(c.name()), Some(c));
        }
        assert_eq!(Capability::parse("viewbase"), None);
    }
}
