"""The tenant portal: opened from an app-portal-access link, limited to one application."""

import http.server
import json
import subprocess
import threading
import urllib.request

from playwright.sync_api import expect

from conftest import Herald, binary, menu, open_message, screenshot


def portal_link(herald, app, body=None):
    access = herald.ok("POST", f"/api/v1/auth/app-portal-access/{app}", body or {})
    assert access["url"].startswith(herald.url + "/portal#key=")
    return access


def test_a_tenant_manages_its_webhooks_and_sees_nothing_of_another(herald, receiver, page):
    herald.ok("POST", "/api/v1/event-type", {"name": "case.updated", "description": "A case changed",
                                             "schemas": {"1": {"type": "object", "examples": [{"case": 1, "status": "open"}]}}})
    herald.ok("POST", "/api/v1/event-type", {"name": "case.closed", "description": "A case was closed"})
    mine = herald.ok("POST", "/api/v1/app", {"name": "Tenant A", "uid": "tenant-a"})
    other = herald.ok("POST", "/api/v1/app", {"name": "Tenant B", "uid": "tenant-b"})
    herald.ok("POST", f"/api/v1/app/{other['id']}/endpoint", {"url": receiver.url + "/b", "name": "B's secret hook"})
    secret_msg = herald.ok("POST", f"/api/v1/app/{other['id']}/msg", {"eventType": "case.updated", "payload": {"secret": "b-only"}})
    receiver.wait_for("/b", 1)

    access = portal_link(herald, "tenant-a")
    page.goto(access["url"])
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    # The token left the address bar at once.
    assert "key=" not in page.url

    # The same dialog as the console.
    page.get_by_role("button", name="Create webhook").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("Case sync")
    dialog.get_by_label("Description").fill("Our case system")
    dialog.get_by_label("URL").fill(receiver.url + "/a")
    dialog.get_by_label("case.updated").check()
    dialog.get_by_label("case.closed").check()
    dialog.get_by_role("button", name="Create", exact=True).click()
    card = page.get_by_role("region", name="Case sync")
    expect(card.locator(".tag")).to_have_text(["case.closed", "case.updated"])
    screenshot(page, "portal-webhooks")

    # A delivery shows in the tenant's log with the receiver's answer.
    msg = herald.ok("POST", f"/api/v1/app/{mine['id']}/msg", {"eventType": "case.updated", "payload": {"case": 7}})
    receiver.wait_for("/a", 1)
    open_message(page, menu(page, "Delivery log"), msg["id"])
    delivery = page.locator("section.delivery")
    expect(delivery).to_contain_text("Delivered")
    delivery.get_by_role("button", name="Response").click()
    expect(delivery.locator("pre.response")).to_have_text("thanks")

    # The receiver fails: the reason shows on the webhook and in the log; fixed, the
    # tenant resends and it is delivered.
    receiver.answer(500, b"case system down")
    failed = herald.ok("POST", f"/api/v1/app/{mine['id']}/msg", {"eventType": "case.closed", "payload": {"case": 7}})
    receiver.wait_for("/a", 2)
    menu(page, "Webhooks").click()
    expect(page.get_by_role("region", name="Case sync")).to_contain_text("HTTP 500")
    open_message(page, menu(page, "Delivery log"), failed["id"])
    delivery = page.locator("section.delivery")
    expect(delivery).to_contain_text("Failed: HTTP 500")
    delivery.get_by_role("button", name="Response").click()
    expect(delivery.locator("pre.response")).to_have_text("case system down")
    receiver.answer(200, b"thanks")
    delivery.get_by_role("button", name="Resend").click()
    receiver.wait_for("/a", 3)
    expect(page.locator("section.delivery tr.attempt")).to_have_count(2)
    expect(page.locator("section.delivery .heading .badge")).to_have_text("Delivered")
    screenshot(page, "portal-message")

    # A test event: the type's example, to this webhook, and in the log.
    menu(page, "Webhooks").click()
    page.get_by_role("region", name="Case sync").get_by_role("button", name="Send test event").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Event type").select_option("case.updated")
    dialog.get_by_role("button", name="Send").click()
    got = receiver.wait_for("/a", 4)
    assert json.loads(got[3]["body"]) == {"case": 1, "status": "open"}
    page.get_by_role("status").get_by_role("link").click()
    expect(page.locator("pre.payload")).to_contain_text('"status": "open"')
    expect(page.locator("section.delivery")).to_contain_text("Delivered")

    # The topics edited, then deactivated: nothing more arrives, while another webhook
    # gets the next message; then deleted.
    menu(page, "Webhooks").click()
    card = page.get_by_role("region", name="Case sync")
    card.get_by_role("button", name="Edit").click()
    page.get_by_role("dialog").get_by_label("case.closed").uncheck()
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    expect(card.locator(".tag")).to_have_text(["case.updated"])
    card.get_by_role("button", name="Deactivate").click()
    expect(card).to_contain_text("Disabled")
    herald.ok("POST", f"/api/v1/app/{mine['id']}/endpoint", {"url": receiver.url + "/a2", "name": "Audit"})
    herald.ok("POST", f"/api/v1/app/{mine['id']}/msg", {"eventType": "case.updated", "payload": {"case": 8}})
    receiver.wait_for("/a2", 1)
    assert receiver.count("/a") == 4
    page.reload()
    card = page.get_by_role("region", name="Case sync")
    card.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete webhook").click()
    expect(card).to_have_count(0)
    expect(page.get_by_role("region", name="Audit")).to_be_visible()

    # The catalogue, read only.
    page.get_by_role("link", name="Event types").click()
    expect(page.get_by_role("region", name="case.closed")).to_contain_text("A case was closed")
    expect(page.get_by_role("button", name="New event type")).to_have_count(0)

    # Another application's ids typed in the address bar show nothing of it.
    for path in [f"#/msg/{secret_msg['id']}", f"#/apps/{other['id']}", f"#/apps/{other['id']}/messages"]:
        page.goto(herald.url + "/portal" + path)
        # Something was drawn (the tenant's own screen, or an error) before looking.
        expect(page.locator("main h2, main [role=alert]").first).to_be_visible()
        expect(page.locator("main")).not_to_contain_text("b-only")
        expect(page.locator("main")).not_to_contain_text("B's secret hook")
        expect(page.locator("main")).not_to_contain_text("Tenant B")
    page.goto(herald.url + f"/portal#/msg/{secret_msg['id']}")
    expect(page.get_by_role("alert")).to_be_visible()

    # Signing out revokes the token: the API refuses it afterwards.
    page.goto(herald.url + "/portal#/webhooks")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert")).to_contain_text("expired or was signed out")
    status, _ = herald.api("GET", f"/api/v1/app/{mine['id']}/endpoint", token=access["token"])
    assert status == 401

    # The portal's token never reached Herald's log.
    assert not [line for line in herald.log if access["token"] in line]


def test_only_the_sites_allowed_may_frame_the_portal(herald):
    def policy(h, path):
        with urllib.request.urlopen(h.url + path, timeout=10) as resp:
            return resp.headers["Content-Security-Policy"]

    assert policy(herald, "/portal").endswith("frame-ancestors 'none'")
    assert policy(herald, "/ui").endswith("frame-ancestors 'none'")
    framed = Herald(binary(), ["--portal-frame-ancestors", "https://app.example.com,http://localhost:3000"])
    try:
        assert policy(framed, "/portal").endswith("frame-ancestors https://app.example.com http://localhost:3000")
        # The console is never framed.
        assert policy(framed, "/ui").endswith("frame-ancestors 'none'")
    finally:
        framed.stop()
    refused = subprocess.run(
        [binary(), "serve", "--bind", "127.0.0.1:0", "--data-dir", "/nonexistent/never-made",
         "--portal-frame-ancestors", "https://a.example; script-src *"],
        capture_output=True, text=True, timeout=30,
    )
    assert refused.returncode != 0
    assert "--portal-frame-ancestors" in refused.stderr and "is not an origin" in refused.stderr, refused.stderr


def test_a_view_only_token_shows_no_edit_and_the_api_refuses_it(herald, receiver, page):
    app = herald.ok("POST", "/api/v1/app", {"name": "Viewer", "uid": "viewer"})
    ep = herald.ok("POST", f"/api/v1/app/{app['id']}/endpoint", {"url": receiver.url + "/v", "name": "Read me"})
    msg = herald.ok("POST", f"/api/v1/app/{app['id']}/msg", {"eventType": "case.updated", "payload": {"case": 1}})
    receiver.wait_for("/v", 1)
    access = portal_link(herald, "viewer", {"capabilities": ["ViewBase"]})
    assert access["capabilities"] == ["ViewBase"]
    page.goto(access["url"])
    card = page.get_by_role("region", name="Read me")
    expect(card).to_contain_text(receiver.url + "/v")
    # The health line is drawn: the card is complete before looking for what is absent.
    expect(card).to_contain_text("1 ok")
    for button in ["Create webhook", "Edit", "Edit filter", "Deactivate", "Delete", "Signing secret", "Recover failed"]:
        expect(page.get_by_role("button", name=button, exact=True)).to_have_count(0)
    page.get_by_role("link", name="Delivery log").click()
    page.get_by_role("link", name=msg["id"]).click()
    expect(page.locator("section.delivery")).to_contain_text("Delivered")
    expect(page.get_by_role("button", name="Resend")).to_have_count(0)
    status, answer = herald.api("PATCH", f"/api/v1/app/{app['id']}/endpoint/{ep['id']}", {"disabled": True}, token=access["token"])
    assert status == 403 and "ManageEndpoint" in answer["detail"], answer
    assert herald.ok("GET", f"/api/v1/app/{app['id']}/endpoint/{ep['id']}")["disabled"] is False


def test_a_token_for_filters_changes_the_filter_only(herald, receiver, page):
    app = herald.ok("POST", "/api/v1/app", {"name": "Rules", "uid": "rules"})
    ep = herald.ok("POST", f"/api/v1/app/{app['id']}/endpoint", {"url": receiver.url + "/r", "name": "Filtered"})
    access = portal_link(herald, "rules", {"capabilities": ["ViewBase", "ManageTransformations"]})
    page.goto(access["url"])
    page.get_by_role("region", name="Filtered").get_by_role("button", name="Edit filter").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("URL")).to_be_disabled()
    dialog.get_by_label("Filter", exact=True).fill('{"payload.case": {"$gt": 10}}')
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    saved = herald.ok("GET", f"/api/v1/app/{app['id']}/endpoint/{ep['id']}")
    assert saved["filter"] == {"payload.case": {"$gt": 10}}
    assert saved["url"] == receiver.url + "/r"


# The platform's logo.
LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg" width="96" height="28">'
        b'<rect width="96" height="28" rx="6" fill="#0a7c2f"/>'
        b'<text x="48" y="19" font-family="sans-serif" font-size="14" fill="#fff" text-anchor="middle">Acme</text></svg>')


class ImageSite:
    """The platform's own site on loopback, serving its logo."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "image/svg+xml")
                self.send_header("content-length", str(len(LOGO)))
                self.end_headers()
                self.wfile.write(LOGO)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def accent_of(page):
    return page.get_by_role("button", name="Create webhook").evaluate("b => getComputedStyle(b).backgroundColor")


def test_the_portal_wears_the_platforms_accent_and_logo(page):
    site, elsewhere = ImageSite(), ImageSite()
    herald = Herald(binary(), extra=("--portal-accent", "#aa3300", "--portal-frame-ancestors", site.origin))
    try:
        herald.ok("POST", "/api/v1/app", {"name": "Tenant A", "uid": "tenant-a"})
        # The operator's accent, from the flag.
        access = portal_link(herald, "tenant-a")
        page.goto(access["url"])
        expect(page.get_by_role("button", name="Create webhook")).to_be_visible()
        assert accent_of(page) == "rgb(170, 51, 0)"
        expect(page.locator("header img.logo")).to_have_count(0)

        # A link's own accent and logo (from the framing site) win, and stay as the
        # address bar is cleaned.
        link = access["url"].replace("/portal#", f"/portal?accent=0a7c2f&logo={site.origin}/logo.svg#")
        page.goto(link)
        expect(page.get_by_role("button", name="Create webhook")).to_be_visible()
        assert "?" not in page.url and "key=" not in page.url
        assert accent_of(page) == "rgb(10, 124, 47)"
        logo = page.locator("header img.logo")
        expect(logo).to_have_attribute("src", f"{site.origin}/logo.svg")
        page.wait_for_function("document.querySelector('header img.logo').complete")
        assert logo.evaluate("img => img.naturalWidth") == 96
        screenshot(page, "portal-branded")

        # A logo from a site the operator did not allow is refused by the page's policy,
        # and a colour that is not one is ignored.
        link = access["url"].replace("/portal#", f"/portal?accent=red;x&logo={elsewhere.origin}/logo.svg#")
        page.goto(link)
        expect(page.get_by_role("button", name="Create webhook")).to_be_visible()
        expect(page.locator("header img.logo")).to_have_count(0)
        assert accent_of(page) == "rgb(170, 51, 0)"
    finally:
        herald.stop()
        site.server.shutdown()
        elsewhere.server.shutdown()


def test_a_bad_accent_or_logo_flag_stops_herald_with_what_is_wrong():
    for flag, value, says in [
        ("--portal-accent", "red", "`red` is not a colour such as #1a73e8"),
        ("--portal-logo", "javascript:alert(1)", "`javascript:alert(1)` is not an image address"),
    ]:
        run = subprocess.run([binary(), "serve", "--bind", "127.0.0.1:0", flag, value],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode != 0
        assert says in run.stderr and flag in run.stderr, run.stderr
