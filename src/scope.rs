//! Tenant and user isolation.
//!
//! A [`Scope`] names a tenant, a user, or both. Its [`encode`](Scope::encode)d
//! form is self-delimiting (a tag, then each part length-prefixed), so no
//! choice of tenant, user or key can make two different `(scope, key)` pairs
//! produce the same string: `encode(s1) + k1 == encode(s2) + k2` implies
//! `s1 == s2` and `k1 == k2`. Plain concatenation with `:` has no such
//! guarantee (`tenant "a:b", key "c"` vs `tenant "a", key "b:c"`).
//!
//! The encoding names the interned namespaces of the L1 store and is the
//! prefix of keys written to shared tiers.

use crate::error::{Error, Result};

/// A tenant, a user, or both. The unscoped (root) keyspace is not a `Scope`.
///
/// ```
/// use edgecache::Scope;
/// let s = Scope::new(Some("acme"), Some("42")).unwrap();
/// assert_eq!(s.encode(), "b4:acme2:42|");
/// assert_eq!(Scope::new(Some("acme"), None).unwrap().encode(), "t4:acme|");
/// assert!(Scope::new(None, None).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    tenant: Option<String>,
    user: Option<String>,
}

impl Scope {
    /// A scope; at least one of `tenant` and `user` must be given, and
    /// neither may be empty.
    pub fn new(tenant: Option<&str>, user: Option<&str>) -> Result<Self> {
        if tenant.is_none() && user.is_none() {
            return Err(Error::InvalidScope("give a tenant, a user, or both".into()));
        }
        for (name, part) in [("tenant", tenant), ("user", user)] {
            if part == Some("") {
                return Err(Error::InvalidScope(format!("{name} is empty")));
            }
        }
        Ok(Scope {
            tenant: tenant.map(str::to_owned),
            user: user.map(str::to_owned),
        })
    }

    /// A tenant-only scope.
    pub fn tenant(tenant: &str) -> Result<Self> {
        Self::new(Some(tenant), None)
    }

    /// A user-only scope.
    pub fn user(user: &str) -> Result<Self> {
        Self::new(None, Some(user))
    }

    /// The tenant, if any.
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The user, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Narrows this scope by `other`: parts this scope lacks are taken from
    /// `other`; a part both have must be equal, so a view can never widen
    /// or switch its tenant or user.
    ///
    /// ```
    /// use edgecache::Scope;
    /// let t = Scope::tenant("acme").unwrap();
    /// let tu = t.narrow(&Scope::user("7").unwrap()).unwrap();
    /// assert_eq!(tu, Scope::new(Some("acme"), Some("7")).unwrap());
    /// assert!(t.narrow(&Scope::tenant("evil").unwrap()).is_err());
    /// ```
    pub fn narrow(&self, other: &Scope) -> Result<Scope> {
        fn pick(name: &str, a: &Option<String>, b: &Option<String>) -> Result<Option<String>> {
            match (a, b) {
                (Some(x), Some(y)) if x != y => Err(Error::InvalidScope(format!(
                    "this view is bound to {name} {x:?} and cannot switch to {y:?}"
                ))),
                (Some(x), _) => Ok(Some(x.clone())),
                (None, y) => Ok(y.clone()),
            }
        }
        Ok(Scope {
            tenant: pick("tenant", &self.tenant, &other.tenant)?,
            user: pick("user", &self.user, &other.user)?,
        })
    }

    /// Reads an [`encode`](Scope::encode)d scope at the start of `text`:
    /// the scope and how many bytes it took. `None` unless `text` starts
    /// with exactly what `encode` writes (canonical lengths, no empty part).
    ///
    /// ```
    /// use edgecache::Scope;
    /// let s = Scope::new(Some("acme"), Some("42")).unwrap();
    /// assert_eq!(Scope::decode_prefix("b4:acme2:42|key"), Some((s, 12)));
    /// assert_eq!(Scope::decode_prefix("t04:acme|key"), None);
    /// ```
    pub fn decode_prefix(text: &str) -> Option<(Scope, usize)> {
        let parts = match text.as_bytes().first()? {
            b't' | b'u' => 1,
            b'b' => 2,
            _ => return None,
        };
        let mut at = 1;
        let mut got: [Option<&str>; 2] = [None, None];
        for slot in got.iter_mut().take(parts) {
            let rest = &text[at..];
            let colon = rest.bytes().position(|b| b == b':')?;
            let digits = &rest[..colon];
            if digits.is_empty() || digits.len() > 9 || digits.starts_with('0') {
                return None;
            }
            let mut len = 0usize;
            for d in digits.bytes() {
                if !d.is_ascii_digit() {
                    return None;
                }
                len = len * 10 + usize::from(d - b'0');
            }
            let start = at + colon + 1;
            let end = start.checked_add(len)?;
            *slot = Some(text.get(start..end)?);
            at = end;
        }
        if text.as_bytes().get(at) != Some(&b'|') {
            return None;
        }
        let scope = match (text.as_bytes()[0], got) {
            (b't', [t, _]) => Scope::new(t, None),
            (b'u', [u, _]) => Scope::new(None, u),
            (_, [t, u]) => Scope::new(t, u),
        }
        .ok()?;
        Some((scope, at + 1))
    }

    /// The self-delimiting encoding: a tag (`t` tenant, `u` user, `b` both),
    /// each part as `<utf-8 byte length>:<part>`, then `|`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(
            8 + self.tenant.as_ref().map_or(0, String::len)
                + self.user.as_ref().map_or(0, String::len),
        );
        out.push(match (&self.tenant, &self.user) {
            (Some(_), Some(_)) => 'b',
            (Some(_), None) => 't',
            _ => 'u',
        });
        for part in [&self.tenant, &self.user].into_iter().flatten() {
            out.push_str(&part.len().to_string());
            out.push(':');
            out.push_str(part);
        }
        out.push('|');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope() -> impl Strategy<Value = Scope> {
        let part = proptest::option::of("[a-c:|0-9]{1,4}");
        (part.clone(), part)
            .prop_filter("needs a part", |(t, u)| t.is_some() || u.is_some())
            .prop_map(|(t, u)| Scope::new(t.as_deref(), u.as_deref()).unwrap())
    }

    proptest! {
        #[test]
        fn encoding_is_unambiguous(s1 in scope(), k1 in "[a-c:|0-9]{0,4}", s2 in scope(), k2 in "[a-c:|0-9]{0,4}") {
            let a = s1.encode() + &k1;
            let b = s2.encode() + &k2;
            prop_assert_eq!(a == b, s1 == s2 && k1 == k2);
        }
    }
}
