//! What an application token may do under its own application, by route and by the
//! token's capabilities: a pure decision, made before any handler runs.

use http::Method;
use model::{Capabilities, Capability};

/// Whether a token with `capabilities` may call `method` on `rest`, the path's segments
/// after `/api/v1/app/{app}`; if not, what it cannot do, for the 403.
pub(crate) fn app_route(
    method: &Method,
    rest: &[&str],
    capabilities: Capabilities,
) -> Result<(), String> {
    use Capability::*;
    let (needs, what): (&[Capability], &str) = match (method, rest) {
        (_, ["token", ..]) => return Err("manage tokens".into()),
        (&Method::GET, ["endpoint", _, "secret"]) => (
            &[ViewEndpointSecret, ManageEndpointSecret, ManageEndpoint],
            "read endpoint secrets",
        ),
        (&Method::GET, _) => (&[ViewBase], "read this application"),
        (_, []) => return Err("change or delete its application".into()),
        (&Method::POST, ["msg"]) => return Err("publish messages".into()),
        (&Method::POST, ["endpoint", _, "secret", "rotate"]) => (
            &[ManageEndpointSecret, ManageEndpoint],
            "rotate endpoint secrets",
        ),
        (&Method::POST, ["endpoint", _, "filter", "test"]) => (&[ViewBase], "try filters"),
        (&Method::DELETE, ["msg", _, "content"])
        | (&Method::DELETE, ["msg", _, "attempt", _, "content"]) => {
            (&[ManageEndpoint], "expunge what was sent or answered")
        }
        (&Method::POST, ["endpoint", _, "send-example"]) => {
            (&[ManageEndpoint, CreateAttempts], "send test events")
        }
        (&Method::POST, ["endpoint", _, "recover"])
        | (&Method::POST, ["msg", _, "endpoint", _, "resend"]) => {
            (&[CreateAttempts], "send deliveries again")
        }
        // A token that may change only filters and transforms is held to those fields by
        // the handler.
        (&Method::PATCH, ["endpoint", _]) => {
            (&[ManageEndpoint, ManageTransformations], "change endpoints")
        }
        _ => (&[ManageEndpoint], "create, change or delete endpoints"),
    };
    if capabilities.any(needs) {
        return Ok(());
    }
    let names: Vec<&str> = needs.iter().map(|c| c.name()).collect();
    Err(format!(
        "{what}: it needs the {} capability",
        names.join(" or ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::*;

    #[test]
    fn each_route_needs_its_capability() {
        let view = Capabilities::of([ViewBase]);
        let secrets = Capabilities::of([ViewBase, ViewEndpointSecret]);
        let rotate = Capabilities::of([ViewBase, ManageEndpointSecret]);
        let rules = Capabilities::of([ViewBase, ManageTransformations]);
        let replay = Capabilities::of([ViewBase, CreateAttempts]);
        let manage = Capabilities::of([ViewBase, ManageEndpoint]);
        let all = Capabilities::ALL;
        // (method, path after the application, capabilities, allowed)
        let table: &[(Method, &str, Capabilities, bool)] = &[
            (Method::GET, "", view, true),
            (Method::GET, "endpoint", view, true),
            (Method::GET, "msg/m1/attempt/a1", view, true),
            (Method::GET, "endpoint/e1/secret", view, false),
            (Method::GET, "endpoint/e1/secret", secrets, true),
            (Method::GET, "endpoint/e1/secret", rotate, true),
            (Method::GET, "endpoint/e1/secret", manage, true),
            (Method::POST, "endpoint/e1/secret/rotate", secrets, false),
            (Method::POST, "endpoint/e1/secret/rotate", rotate, true),
            (Method::POST, "endpoint/e1/filter/test", view, true),
            (Method::POST, "endpoint/e1/send-example", view, false),
            (Method::DELETE, "msg/m1/content", replay, false),
            (Method::DELETE, "msg/m1/content", manage, true),
            (Method::DELETE, "msg/m1/attempt/a1/content", view, false),
            (Method::POST, "endpoint/e1/send-example", replay, true),
            (Method::POST, "endpoint/e1/send-example", manage, true),
            (Method::POST, "endpoint", view, false),
            (Method::POST, "endpoint", rules, false),
            (Method::POST, "endpoint", manage, true),
            (Method::PUT, "endpoint/e1", rules, false),
            (Method::PATCH, "endpoint/e1", view, false),
            (Method::PATCH, "endpoint/e1", rules, true),
            (Method::PATCH, "endpoint/e1", manage, true),
            (Method::DELETE, "endpoint/e1", replay, false),
            (Method::DELETE, "endpoint/e1", manage, true),
            (Method::PUT, "endpoint/e1/headers", rules, false),
            (Method::POST, "endpoint/e1/recover", manage, false),
            (Method::POST, "endpoint/e1/recover", replay, true),
            (Method::POST, "msg/m1/endpoint/e1/resend", view, false),
            (Method::POST, "msg/m1/endpoint/e1/resend", replay, true),
            // Never, whatever the token holds.
            (Method::PUT, "", all, false),
            (Method::DELETE, "", all, false),
            (Method::POST, "msg", all, false),
            (Method::GET, "token", all, false),
            (Method::DELETE, "token/t1", all, false),
        ];
        for (method, path, capabilities, allowed) in table {
            let rest: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(
                app_route(method, &rest, *capabilities).is_ok(),
                *allowed,
                "{method} {path} with {:?}",
                capabilities.names()
            );
        }
    }

    #[test]
    fn a_refusal_names_the_capability_needed() {
        let err =
            app_route(&Method::POST, &["endpoint"], Capabilities::of([ViewBase])).unwrap_err();
        assert_eq!(
            err,
            "create, change or delete endpoints: it needs the ManageEndpoint capability"
        );
    }
}
