//! Application tokens: Svix's app-portal access (a token limited to one application),
//! logout, and Herald's token listing and revocation. Tokens are shown once, when minted;
//! Herald keeps only their SHA-256 digest.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use base64::Engine;
use chrono::{DateTime, Utc};
use model::{ApiToken, Capabilities, Capability, TokenId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::applications::{self, ApplicationIn};
use super::messages::app_for_publish;
use crate::AppState;
use crate::auth::{APP_TOKEN_PREFIX, Principal, digest_hex};
use crate::error::{ApiError, ApiResult, ValidationErrorItem};
use crate::extract::{ValidJson, ValidPath, Validate};
use crate::validate;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(app_portal_access))
        .routes(routes!(logout))
        .routes(routes!(session))
        .routes(routes!(list_tokens))
        .routes(routes!(revoke_token))
}

/// A token's lifetime when none is asked for: 7 days, as Svix.
const DEFAULT_EXPIRY_SECONDS: u64 = 7 * 24 * 3600;
const MAX_EXPIRY_SECONDS: u64 = 365 * 24 * 3600;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AppPortalAccessIn {
    /// Creates the application when the path names one that does not exist.
    #[serde(default)]
    application: Option<ApplicationIn>,
    /// Accepted for Svix compatibility; Herald has no feature flags.
    #[serde(default)]
    feature_flags: Option<Vec<String>>,
    /// How long the token is valid, in seconds (1 to 31,536,000; default 7 days).
    #[serde(default)]
    expiry: Option<u64>,
    /// What the token may do (`ViewBase`, which is required, `ViewEndpointSecret`,
    /// `ManageEndpointSecret`, `ManageTransformations`, `CreateAttempts`,
    /// `ManageEndpoint`); everything when absent.
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    /// Deprecated by Svix: `true` is `["ViewBase", "ViewEndpointSecret"]`.
    #[serde(default)]
    read_only: Option<bool>,
}

impl AppPortalAccessIn {
    /// The capabilities asked for (after `validate`).
    fn capabilities(&self) -> Capabilities {
        match (&self.capabilities, self.read_only) {
            (Some(names), _) => Capabilities::of(names.iter().filter_map(|n| Capability::parse(n))),
            (None, Some(true)) => {
                Capabilities::of([Capability::ViewBase, Capability::ViewEndpointSecret])
            }
            (None, _) => Capabilities::ALL,
        }
    }
}

impl Validate for AppPortalAccessIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        if let Some(app) = &self.application {
            app.check(&mut problems, "application");
        }
        if let Some(flags) = &self.feature_flags {
            for (i, flag) in flags.iter().enumerate() {
                let index = i.to_string();
                validate::name(&mut problems, &["body", "featureFlags", &index], flag, 256);
            }
        }
        if let Some(names) = &self.capabilities {
            for (i, name) in names.iter().enumerate() {
                if Capability::parse(name).is_none() {
                    let known: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
                    problems.push(ValidationErrorItem::new(
                        &["body", "capabilities", &i.to_string()],
                        format!("`{name}` is not a capability (one of {})", known.join(", ")),
                    ));
                }
            }
            if !names.iter().any(|n| n == Capability::ViewBase.name()) {
                problems.push(ValidationErrorItem::new(
                    &["body", "capabilities"],
                    "must include ViewBase",
                ));
            }
        }
        if let Some(expiry) = self.expiry
            && !(1..=MAX_EXPIRY_SECONDS).contains(&expiry)
        {
            problems.push(ValidationErrorItem::new(
                &["body", "expiry"],
                format!("must be 1 to {MAX_EXPIRY_SECONDS} seconds"),
            ));
        }
        problems
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AppPortalAccessOut {
    /// The token: `Authorization: Bearer <token>` opens this application's endpoints,
    /// messages and attempts. Shown only now.
    token: String,
    /// The tenant portal of this application, signed in with this token: the token is in
    /// the URL's fragment, which browsers never send to a server.
    url: String,
    /// Herald extension: the token's id, to revoke it.
    token_id: String,
    /// Herald extension: when the token stops working.
    #[serde(serialize_with = "crate::time::serialize")]
    expires_at: DateTime<Utc>,
    /// Herald extension: what the token may do.
    capabilities: Vec<&'static str>,
}

/// Mint a token limited to one application (app-portal access).
#[utoipa::path(post, path = "/api/v1/auth/app-portal-access/{app_id}", tag = "Authentication",
    params(("app_id" = String, Path)), request_body = AppPortalAccessIn,
    responses((status = 200, body = AppPortalAccessOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn app_portal_access(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<AppPortalAccessIn>,
) -> ApiResult<Json<AppPortalAccessOut>> {
    let capabilities = body.capabilities();
    let app = app_for_publish(&state, &app_id, body.application).await?;
    let now = state.clock.now();
    let seconds = body.expiry.unwrap_or(DEFAULT_EXPIRY_SECONDS);
    let expires_at = now + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
    let secret: [u8; 24] = rand::random();
    let token = format!(
        "{APP_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let stored = state
        .store
        .create_token(ApiToken {
            id: TokenId::generate(),
            app_id: app.id.clone(),
            digest: digest_hex(&token),
            created_at: now,
            expires_at,
            revoked_at: None,
            capabilities,
        })
        .await?;
    Ok(Json(AppPortalAccessOut {
        url: portal_url(&headers, &token, app.id.as_str()),
        token,
        token_id: stored.id.into_string(),
        expires_at,
        capabilities: capabilities.names(),
    }))
}

/// The portal's address as the caller reached Herald (its `Host`, and `https` when a proxy
/// in front says so with `X-Forwarded-Proto`), with the token and application in the
/// fragment.
fn portal_url(headers: &HeaderMap, token: &str, app: &str) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}/portal#key={token}&app={app}")
}

/// Revoke the application token making this request.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "Authentication",
    responses((status = 204), (status = 403, body = crate::error::HttpErrorOut)))]
async fn logout(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<StatusCode> {
    match principal {
        Principal::App {
            app_id, token_id, ..
        } => {
            state
                .store
                .revoke_token(&app_id, &token_id, state.clock.now())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Principal::Admin => Err(ApiError::Forbidden(
            "only an application token can log out; the admin token is set in Herald's \
             configuration"
                .into(),
        )),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionOut {
    /// Whether this is the admin token.
    admin: bool,
    /// The application an application token opens.
    app_id: Option<String>,
    /// What the token may do within its application (everything for the admin token).
    capabilities: Vec<&'static str>,
}

/// Herald extension: who the calling token is and what it may do (the console and portal
/// show only what it may do).
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "Authentication",
    responses((status = 200, body = SessionOut)))]
async fn session(Extension(principal): Extension<Principal>) -> Json<SessionOut> {
    Json(match principal {
        Principal::Admin => SessionOut {
            admin: true,
            app_id: None,
            capabilities: Capabilities::ALL.names(),
        },
        Principal::App {
            app_id,
            capabilities,
            ..
        } => SessionOut {
            admin: false,
            app_id: Some(app_id.into_string()),
            capabilities: capabilities.names(),
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenOut {
    id: String,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::serialize")]
    expires_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::serialize_opt")]
    revoked_at: Option<DateTime<Utc>>,
    capabilities: Vec<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
struct TokenListOut {
    data: Vec<TokenOut>,
}

/// Herald extension: an application's tokens (never the tokens themselves), newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/token", tag = "Authentication",
    params(("app_id" = String, Path)), responses((status = 200, body = TokenListOut)))]
async fn list_tokens(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
) -> ApiResult<Json<TokenListOut>> {
    let app = applications::load(&state, &app_id).await?;
    let tokens = state.store.list_tokens(&app.id).await?;
    Ok(Json(TokenListOut {
        data: tokens
            .into_iter()
            .map(|t| TokenOut {
                id: t.id.into_string(),
                created_at: t.created_at,
                expires_at: t.expires_at,
                revoked_at: t.revoked_at,
                capabilities: t.capabilities.names(),
            })
            .collect(),
    }))
}

/// Herald extension: revoke one of an application's tokens.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/token/{token_id}", tag = "Authentication",
    params(("app_id" = String, Path), ("token_id" = String, Path)), responses((status = 204)))]
async fn revoke_token(
    State(state): State<AppState>,
    ValidPath((app_id, token_id)): ValidPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = applications::load(&state, &app_id).await?;
    if !TokenId::looks_like(&token_id) {
        return Err(ApiError::NotFound);
    }
    state
        .store
        .revoke_token(&app.id, &TokenId::from_string(token_id), state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
