//! Herald's two faces, served by `herald serve` itself: the console for operators at
//! `/ui` (signed in with the admin token) and the portal for one tenant at `/portal`
//! (signed in with an application token from `POST /api/v1/auth/app-portal-access`).
//!
//! Both are one page of plain HTML, CSS and JavaScript modules, written by hand and
//! embedded in the binary: nothing is built, fetched or run besides Herald. The page
//! talks to the public API with the token as a bearer header, and renders every value
//! as text (see docs/SECURITY.md). Each response carries a strict Content-Security-Policy:
//! scripts, styles and API calls from this origin only, and framing by the sites the
//! operator allows for the portal (none by default), never for the console.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The files of the page, by name under `/ui/assets/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    ("main.js", JS, include_bytes!("../assets/main.js")),
    ("api.js", JS, include_bytes!("../assets/api.js")),
    ("dom.js", JS, include_bytes!("../assets/dom.js")),
    ("apps.js", JS, include_bytes!("../assets/apps.js")),
    ("endpoints.js", JS, include_bytes!("../assets/endpoints.js")),
    ("messages.js", JS, include_bytes!("../assets/messages.js")),
    ("failing.js", JS, include_bytes!("../assets/failing.js")),
    (
        "event_types.js",
        JS,
        include_bytes!("../assets/event_types.js"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: &[u8] = include_bytes!("../assets/index.html");

/// What the operator decides about the faces.
#[derive(Debug, Clone, Default)]
pub struct UiConfig {
    /// Origins that may show the portal in a frame (`frame-ancestors`); none when empty.
    pub portal_frame_ancestors: Vec<String>,
    /// The portal's accent colour (`#rrggbb` or `#rgb`, checked by `accent`).
    pub portal_accent: Option<String>,
    /// The portal's logo (checked by `logo`): its origin may serve the portal's images.
    pub portal_logo: Option<String>,
}

/// The console at `/ui`, the portal at `/portal`, their assets, and `/` sending to the
/// console.
pub fn router<S: Clone + Send + Sync + 'static>(config: UiConfig) -> Router<S> {
    // The portal shows images from the sites that frame it (a logo given by query) and
    // from the logo's own site.
    let mut images = config.portal_frame_ancestors.clone();
    images.extend(config.portal_logo.as_deref().and_then(origin_of));
    let portal_policy = policy_with_images(&config.portal_frame_ancestors, &images);
    let brand = serde_json::json!({
        "accent": config.portal_accent,
        "logo": config.portal_logo,
    })
    .to_string();
    Router::new()
        .route(
            "/portal/brand.json",
            get(move || {
                let brand = brand.clone();
                async move { brand_json(brand) }
            }),
        )
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(console))
        .route("/ui/", get(console))
        .route("/portal", get(portal))
        .route("/portal/", get(portal))
        .route("/ui/assets/{name}", get(asset))
        .with_state(Policies {
            console: HeaderValue::from_str(&policy(&[])).expect("a policy is a header value"),
            portal: HeaderValue::from_str(&portal_policy)
                .unwrap_or_else(|_| HeaderValue::from_static("frame-ancestors 'none'")),
        })
}

#[derive(Clone)]
struct Policies {
    console: HeaderValue,
    portal: HeaderValue,
}

/// Checks one site allowed to frame the portal: a scheme and host (`https://app.example.com`,
/// with a port or a leading `*.` if wanted), nothing else, so the policy header says only
/// what the operator meant.
pub fn frame_ancestor(site: &str) -> Result<String, String> {
    let site = site.trim().trim_end_matches('/');
    let host = site
        .strip_prefix("https://")
        .or_else(|| site.strip_prefix("http://"))
        .ok_or_else(|| format!("`{site}` is not an origin such as https://app.example.com"))?;
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        !bare.is_empty()
            && bare.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    if name_ok && port_ok {
        Ok(site.to_owned())
    } else {
        Err(format!(
            "`{site}` is not an origin such as https://app.example.com (a scheme and a host, \
             with a port or a leading *. if wanted, and no path)"
        ))
    }
}

/// The Content-Security-Policy of the page: everything from this origin only, no inline
/// script or style, no plugins, forms and base URLs pinned, framed only by `ancestors`.
pub fn policy(ancestors: &[String]) -> String {
    policy_with_images(ancestors, &[])
}

/// As `policy`, with images also from the origins in `images`.
fn policy_with_images(ancestors: &[String], images: &[String]) -> String {
    let frame = if ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        ancestors.join(" ")
    };
    let mut img = String::from("'self' data:");
    for origin in images {
        img.push(' ');
        img.push_str(origin);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {frame}"
    )
}

/// Checks the portal's accent colour: `#rgb` or `#rrggbb`.
pub fn accent(colour: &str) -> Result<String, String> {
    let colour = colour.trim();
    let hex = colour.strip_prefix('#').unwrap_or(colour);
    if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("#{}", hex.to_ascii_lowercase()))
    } else {
        Err(format!("`{colour}` is not a colour such as #1a73e8"))
    }
}

/// Checks the portal's logo: an `https://` (or `http://`) address, or a path on this
/// server (`/…`).
pub fn logo(address: &str) -> Result<String, String> {
    let address = address.trim();
    let plain = !address.is_empty()
        && address
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '<' | '>' | '\\' | ';'));
    let local = address.starts_with('/') && !address.starts_with("//");
    let remote = origin_of(address).is_some();
    if plain && (local || remote) {
        Ok(address.to_owned())
    } else {
        Err(format!(
            "`{address}` is not an image address such as https://cdn.example.com/logo.svg or /logo.png"
        ))
    }
}

/// The origin of an `https://` or `http://` address (`https://host[:port]`), if it has one.
fn origin_of(address: &str) -> Option<String> {
    let (scheme, rest) = address
        .strip_prefix("https://")
        .map(|rest| ("https", rest))
        .or_else(|| address.strip_prefix("http://").map(|rest| ("http", rest)))?;
    let host = rest.split(['/', '?', '#']).next()?;
    frame_ancestor(&format!("{scheme}://{host}"))
        .ok()
        .filter(|_| !host.starts_with("*."))
}

fn brand_json(body: String) -> Response {
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    secure(response.headers_mut());
    response
}

async fn console(State(p): State<Policies>) -> Response {
    page(p.console)
}

async fn portal(State(p): State<Policies>) -> Response {
    page(p.portal)
}

fn page(policy: HeaderValue) -> Response {
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        INDEX,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    secure(headers);
    // The page is small and changes with the binary: always asked for again.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        *body,
    )
        .into_response();
    let headers = response.headers_mut();
    secure(headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Headers every response of the faces carries.
fn secure(headers: &mut http::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accent_is_a_hex_colour() {
        let table = [
            ("#1A73E8", Some("#1a73e8")),
            ("1a73e8", Some("#1a73e8")),
            ("#abc", Some("#abc")),
            ("#abcd", None),
            ("red", None),
            ("#12345g", None),
            ("#123456; background: url(x)", None),
            ("", None),
        ];
        for (colour, expected) in table {
            assert_eq!(accent(colour).ok().as_deref(), expected, "{colour}");
        }
    }

    #[test]
    fn a_logo_is_an_https_address_or_a_local_path() {
        let table = [
            ("https://cdn.example.com/logo.svg", true),
            ("https://cdn.example.com:8443/a/logo.png?v=2", true),
            ("/static/logo.png", true),
            ("http://localhost:3000/logo.svg", true),
            ("ftp://cdn.example.com/logo.svg", false),
            ("//cdn.example.com/logo.svg", false),
            ("javascript:alert(1)", false),
            ("data:image/svg+xml,<svg onload=alert(1)>", false),
            ("https://cdn.example.com/a b.png", false),
            ("https://x.example; script-src *", false),
            ("https://", false),
            ("", false),
        ];
        for (address, ok) in table {
            assert_eq!(logo(address).is_ok(), ok, "{address}");
        }
    }

    #[test]
    fn the_portal_shows_images_from_its_logo_and_framing_sites() {
        let p = policy_with_images(
            &["https://app.example.com".into()],
            &[
                "https://app.example.com".into(),
                "https://cdn.example.com".into(),
            ],
        );
        assert!(
            p.contains("img-src 'self' data: https://app.example.com https://cdn.example.com;")
        );
        assert_eq!(
            origin_of("https://cdn.example.com:8443/a.png"),
            Some("https://cdn.example.com:8443".into())
        );
        assert_eq!(origin_of("/logo.png"), None);
    }

    #[test]
    fn frame_ancestors_are_origins_only() {
        let table = [
            ("https://app.example.com", Some("https://app.example.com")),
            ("https://app.example.com/", Some("https://app.example.com")),
            ("http://localhost:3000", Some("http://localhost:3000")),
            ("https://*.example.com", Some("https://*.example.com")),
            ("app.example.com", None),
            ("https://app.example.com/settings", None),
            ("https://a.example; script-src *", None),
            ("https://", None),
            ("https://a..example", None),
            ("https://a.example:80x", None),
            ("javascript:alert(1)", None),
            ("*", None),
        ];
        for (site, expected) in table {
            assert_eq!(frame_ancestor(site).ok().as_deref(), expected, "{site}");
        }
    }

    #[test]
    fn the_policy_allows_framing_only_by_the_sites_given() {
        assert!(policy(&[]).ends_with("frame-ancestors 'none'"));
        let p = policy(&["https://app.example.com".into(), "https://b.example".into()]);
        assert!(p.ends_with("frame-ancestors https://app.example.com https://b.example"));
        assert!(p.contains("script-src 'self';"));
    }
}
