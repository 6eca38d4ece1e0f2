//! One module per resource, named as in the Svix API.

pub(crate) mod applications;
pub(crate) mod attempts;
pub(crate) mod attention;
pub(crate) mod auth;
pub(crate) mod endpoint_health;
pub(crate) mod endpoints;
pub(crate) mod event_types;
pub(crate) mod examples;
pub(crate) mod expunge;
pub(crate) mod health;
pub(crate) mod messages;

use serde::{Deserialize, Deserializer};

/// A PATCH field: absent (leave it), `null` (clear it) or a value (set it).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Self::Null,
            Some(v) => Self::Value(v),
        })
    }
}

impl<T> Patch<T> {
    /// Applies the patch to an optional field.
    pub(crate) fn apply_opt(self, field: &mut Option<T>) {
        match self {
            Self::Absent => {}
            Self::Null => *field = None,
            Self::Value(v) => *field = Some(v),
        }
    }

    pub(crate) fn value(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Query flags of Svix's `with_content`, defaulting to true.
pub(crate) fn default_true() -> bool {
    true
}
