//! The session cookie: its settings, reading it from a request, writing it
//! to a response.

use std::fmt::Write as _;
use std::time::Duration;

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use session_store_core::SessionId;

/// The default cookie name (the same as tower-sessions', so an app moving
/// between the two keeps its visitors' cookies).
pub const DEFAULT_COOKIE_NAME: &str = "id";

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SameSite {
    /// Sent only with requests from the same site: no cross-site link or
    /// form carries the session.
    Strict,
    /// Sent with same-site requests and with top-level cross-site
    /// navigations by a safe method (following a link): the default, and
    /// the default of modern browsers.
    #[default]
    Lax,
    /// Sent with every request, cross-site ones too (an embedded app, a
    /// cross-site POST). Browsers accept it only on a `Secure` cookie, and
    /// it leaves CSRF defence to the app.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

impl std::str::FromStr for SameSite {
    type Err = String;

    /// `strict`, `lax` or `none`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "strict" => Ok(Self::Strict),
            "lax" => Ok(Self::Lax),
            "none" => Ok(Self::None),
            _ => Err(format!("unknown SameSite {s:?}: use strict, lax or none")),
        }
    }
}

/// How the session cookie is written. The defaults are the safe ones:
/// `HttpOnly` (always: scripts never see a session id), `SameSite=Lax`,
/// `Path=/`, no `Domain` (the host only), `Secure` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_owned(),
            path: "/".to_owned(),
            domain: None,
            secure: true,
            same_site: SameSite::Lax,
        }
    }
}

/// Whether `name` is a cookie name (an RFC 6265 token).
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` could be a sealed session (non-empty base64url, at most
/// 8 KiB); whether it opens is the core's business.
pub(crate) fn could_be_sealed(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 8192
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `value` can be an attribute value (`Path`, `Domain`): visible
/// ASCII without `;`.
pub(crate) fn is_attribute_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b';')
}

impl CookieConfig {
    /// The values of every cookie called `name` in the request's `Cookie`
    /// headers, in order, unquoted.
    fn values<'a>(&'a self, headers: &'a HeaderMap) -> impl Iterator<Item = &'a str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == self.name)
            .map(|(_, value)| value.trim().trim_matches('"'))
    }

    /// The value of the first cookie called `name` in the request's `Cookie`
    /// headers whose value is a session id's text, if any. Other values
    /// (malformed, a foreign cookie of the same name) are ignored: to the
    /// layer they are "no session".
    pub(crate) fn find(&self, headers: &HeaderMap) -> Option<SessionId> {
        self.values(headers).find_map(|value| value.parse::<SessionId>().ok())
    }

    /// Cookie mode: the value of the first cookie called `name` that could
    /// be a sealed session ([`could_be_sealed`]).
    pub(crate) fn find_sealed(&self, headers: &HeaderMap) -> Option<String> {
        self.values(headers)
            .find(|value| could_be_sealed(value))
            .map(str::to_owned)
    }

    /// `Set-Cookie` for the session `value` (an id's text, or a sealed
    /// session), with `Max-Age` when given (none: a browser-session cookie).
    pub(crate) fn set(&self, value: impl std::fmt::Display, max_age: Option<Duration>) -> HeaderValue {
        let mut text = format!("{}={value}", self.name);
        if let Some(age) = max_age {
            let _ = write!(text, "; Max-Age={}", age.as_secs());
        }
        self.attributes(&mut text);
        header(text)
    }

    /// `Set-Cookie` that removes the cookie from the browser.
    pub(crate) fn clear(&self) -> HeaderValue {
        let mut text = format!("{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT", self.name);
        self.attributes(&mut text);
        header(text)
    }

    fn attributes(&self, text: &mut String) {
        let _ = write!(text, "; Path={}", self.path);
        if let Some(domain) = &self.domain {
            let _ = write!(text, "; Domain={domain}");
        }
        text.push_str("; HttpOnly");
        let _ = write!(text, "; SameSite={}", self.same_site.as_str());
        if self.secure {
            text.push_str("; Secure");
        }
    }
}

fn header(text: String) -> HeaderValue {
    // Every part was checked when it was configured (a token, attribute
    // values of visible ASCII) or is ours (an id, digits), so this always
    // holds a valid header value.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn finds_the_first_cookie_that_is_a_session_id() {
        let config = CookieConfig::default();
        let id = SessionId::random();
        assert_eq!(config.find(&headers(&[&format!("a=1; id={id}; b=2")])), Some(id));
        assert_eq!(config.find(&headers(&["a=1", &format!("id={id}")])), Some(id));
        assert_eq!(
            config.find(&headers(&[&format!("id=../../etc/passwd; id={id}")])),
            Some(id),
            "a malformed one of the same name is skipped"
        );
        assert_eq!(config.find(&headers(&[&format!("xid={id}; idx={id}")])), None);
        assert_eq!(config.find(&headers(&["id=", "id", "id=AAAA", ";;;", "="])), None);
        assert_eq!(config.find(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_has_the_safe_attributes() {
        let config = CookieConfig::default();
        let id = SessionId::random();
        let set = config.set(id, Some(Duration::from_secs(3600)));
        assert_eq!(
            set.to_str().unwrap(),
            format!("id={id}; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax; Secure")
        );
        let browser = config.set(id, None);
        assert!(!browser.to_str().unwrap().contains("Max-Age"));
        let insecure = CookieConfig {
            secure: false,
            same_site: SameSite::Strict,
            domain: Some("example.com".into()),
            path: "/app".into(),
            name: "sid".into(),
        };
        assert_eq!(
            insecure.clear().to_str().unwrap(),
            "sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app; Domain=example.com; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn names_and_attribute_values_are_checked() {
        assert!(is_token("id") && is_token("__Host-sid"));
        for bad in ["", "a b", "a;b", "a=b", "é", "a\"b"] {
            assert!(!is_token(bad), "{bad:?}");
        }
        assert!(is_attribute_value("/") && is_attribute_value("example.com"));
        for bad in ["", "/a;b", "/a b", "/\n"] {
            assert!(!is_attribute_value(bad), "{bad:?}");
        }
        assert_eq!("NONE".parse::<SameSite>().unwrap(), SameSite::None);
        assert!("sometimes".parse::<SameSite>().is_err());
    }
}
