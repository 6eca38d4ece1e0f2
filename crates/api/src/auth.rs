//! Bearer-token authentication and scoping. The admin token is compared as a SHA-256
//! digest in constant time, so neither its content nor its length leaks through timing.
//! Application tokens (`appsk_…`, minted by `POST /api/v1/auth/app-portal-access/{app}`)
//! are looked up by their digest, the only form in which they are stored; each opens one
//! application (see `check_scope`). No token is ever logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use model::{ApiToken, AppId, Capabilities, Clock, TokenId};
use sha2::{Digest, Sha256};
use store::Store;
use subtle::ConstantTimeEq;
use utoipa::Modify;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::error::ApiError;

/// Application tokens start with this.
pub(crate) const APP_TOKEN_PREFIX: &str = "appsk_";

/// Who is calling, for handlers that care (`Extension<Principal>`).
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    Admin,
    App {
        app_id: AppId,
        token_id: TokenId,
        capabilities: Capabilities,
    },
}

/// What the authentication middleware needs.
#[derive(Clone)]
pub(crate) struct Auth {
    pub(crate) admin: AdminToken,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
}

/// SHA-256 of a token, lowercase hex: how application tokens are stored and found.
pub(crate) fn digest_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The admin token, kept only as its digest.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8; 32]>);

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self(Arc::new(Sha256::digest(token.as_bytes()).into()))
    }

    /// The admin token known by its SHA-256 digest (lowercase hex, as `digest`), as the
    /// nodes sharing a database keep it; `None` if `digest` is not one.
    pub fn from_digest(digest: &str) -> Option<Self> {
        let bytes = digest.as_bytes();
        if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(Arc::new(out)))
    }

    /// The token's digest, lowercase hex.
    pub fn digest(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&*self.0))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// Answers 401 unless the request carries `Authorization: Bearer <token>` with the admin
/// token or a valid (unexpired, unrevoked) application token; an application token is
/// then held to its application (`check_scope`).
/// The bearer token of a request, if it has one.
fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Lets through requests with the admin token only (401 without a token or with another;
/// 403 for an application token, which is the operator's to read).
pub(crate) async fn require_admin(
    State(auth): State<Auth>,
    request: Request,
    next: Next,
) -> Response {
    let Some(presented) = bearer(&request) else {
        return ApiError::Unauthorized.into_response();
    };
    if auth.admin.accepts(presented) {
        return next.run(request).await;
    }
    if !presented.starts_with(APP_TOKEN_PREFIX) {
        return ApiError::Unauthorized.into_response();
    }
    match auth.store.token_by_digest(&digest_hex(presented)).await {
        Ok(Some(token)) if token.is_valid(auth.clock.now()) => {
            ApiError::Forbidden("only the admin token may read this".to_owned()).into_response()
        }
        Ok(_) => ApiError::Unauthorized.into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

pub(crate) async fn require_token(
    State(auth): State<Auth>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = bearer(&request);
    let Some(presented) = presented else {
        return ApiError::Unauthorized.into_response();
    };
    if auth.admin.accepts(presented) {
        request.extensions_mut().insert(Principal::Admin);
        return next.run(request).await;
    }
    if !presented.starts_with(APP_TOKEN_PREFIX) {
        return ApiError::Unauthorized.into_response();
    }
    let token = match auth.store.token_by_digest(&digest_hex(presented)).await {
        Ok(Some(token)) if token.is_valid(auth.clock.now()) => token,
        Ok(_) => return ApiError::Unauthorized.into_response(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    if let Err(err) = check_scope(&auth, &token, request.method(), request.uri().path()).await {
        return err.into_response();
    }
    request.extensions_mut().insert(Principal::App {
        app_id: token.app_id,
        token_id: token.id,
        capabilities: token.capabilities,
    });
    next.run(request).await
}

/// What an application token may do: within its own application, what its capabilities
/// allow (`scope::app_route`); event types (read); its own session and logout. Another
/// application's paths answer 404, the same as a missing application, so a token learns
/// nothing about other tenants; everything else (publishing, managing applications, event
/// types and tokens) answers 403.
async fn check_scope(
    auth: &Auth,
    token: &ApiToken,
    method: &Method,
    path: &str,
) -> Result<(), ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(3).collect();
    let forbidden = |what: &str| ApiError::Forbidden(format!("an application token cannot {what}"));
    match segments.as_slice() {
        ["app", named, rest @ ..] => {
            let own = auth
                .store
                .get_app(token.app_id.as_str())
                .await?
                .ok_or(ApiError::NotFound)?;
            if *named != own.id.as_str() && Some(*named) != own.uid.as_deref() {
                return Err(ApiError::NotFound);
            }
            crate::scope::app_route(method, rest, token.capabilities)
                .map_err(|what| forbidden(&what))
        }
        ["event-type", ..] if method == Method::GET => Ok(()),
        ["auth", "logout"] | ["auth", "session"] => Ok(()),
        _ => Err(forbidden(
            "use this route: it is limited to its own application",
        )),
    }
}

/// Declares the bearer scheme in the OpenAPI document.
pub(crate) struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "HTTPBearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "HTTPBearer",
            Vec::<String>::new(),
        )]);
    }
}

#[cfg(test)]
mod tests {
    use super::AdminToken;

    #[test]
    fn a_token_known_by_its_digest_accepts_the_token() {
        let kept = AdminToken::new("hrd_secret").digest();
        let token = AdminToken::from_digest(&kept).unwrap();
        assert!(token.accepts("hrd_secret"));
        assert!(!token.accepts("hrd_other"));
        assert!(AdminToken::from_digest("xyz").is_none());
        assert!(AdminToken::from_digest(&"g".repeat(64)).is_none());
    }
}
