"""The operator's console, driven as a person uses it, in Chromium against a real Herald
and a real receiver."""

import json
import time

from playwright.sync_api import expect

from conftest import TOKEN, menu, open_message, screenshot

XSS = "<img src=x onerror=window.__xss=1>"


def sign_in(page, herald):
    page.goto(herald.url + "/")
    expect(page).to_have_url(herald.url + "/ui")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()


def webhook(page, name):
    return page.get_by_role("region", name=name)


def tab(page, name):
    return page.get_by_role("navigation", name="Application").get_by_role("link", name=name)


def test_an_operator_manages_webhooks_and_deliveries(herald, receiver, page):
    for name, description in [("order.created", "A new order"), ("order.shipped", f"An order left the warehouse {XSS}")]:
        herald.ok("POST", "/api/v1/event-type", {"name": name, "description": description})
    sign_in(page, herald)

    # The catalogue: an event type with its example, made in the console.
    menu(page, "Event types").click()
    page.get_by_role("button", name="New event type").click()
    page.get_by_label("Name").fill("order.paid")
    page.get_by_label("Description").fill("The customer paid")
    page.get_by_label("Example payload").fill('{"order": "A-1", "status": "paid"}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("region", name="order.paid")).to_contain_text("The customer paid")
    expect(page.get_by_role("region", name="order.shipped")).to_contain_text(f"An order left the warehouse {XSS}")

    # An application.
    menu(page, "Applications").click()
    page.get_by_role("button", name="New application").click()
    page.get_by_label("Name").fill("Acme Shop")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Acme Shop")).to_be_visible()
    app_id = page.url.split("/apps/")[1]

    # A webhook from the dialog: name, description, URL and two topics of the catalogue.
    page.get_by_role("button", name="Create webhook").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("Warehouse")
    dialog.get_by_label("Description").fill(f"Orders for the warehouse {XSS}")
    dialog.get_by_label("URL").fill(receiver.url + "/hook")
    dialog.get_by_label("order.created").check()
    dialog.get_by_label("order.paid").check()
    screenshot(page, "console-webhook-dialog")
    dialog.get_by_role("button", name="Create", exact=True).click()
    card = webhook(page, "Warehouse")
    expect(card).to_contain_text(receiver.url + "/hook")
    expect(card).to_contain_text(f"Orders for the warehouse {XSS}")
    expect(card.locator(".tag")).to_have_text(["order.created", "order.paid"])
    expect(card).to_contain_text("Enabled")
    endpoint = herald.ok("GET", f"/api/v1/app/{app_id}/endpoint")["data"][0]
    assert endpoint["name"] == "Warehouse" and endpoint["eventTypes"] == ["order.created", "order.paid"]

    # Published through the API, delivered, and in the log with the receiver's answer.
    first = herald.ok("POST", f"/api/v1/app/{app_id}/msg", {"eventType": "order.created", "payload": {"order": "A-1", "note": XSS}})
    receiver.wait_for("/hook", 1)
    open_message(page, tab(page, "Delivery log"), first["id"])
    expect(page.locator("pre.payload")).to_contain_text(XSS)
    delivery = page.locator("section.delivery")
    expect(delivery).to_contain_text("Delivered")
    delivery.get_by_role("button", name="Response").click()
    expect(delivery.locator("pre.response")).to_have_text("thanks")
    screenshot(page, "console-message")

    # The receiver fails: the failure and its reason show, in the log and on the webhook.
    receiver.answer(503, f"maintenance window {XSS}".encode())
    second = herald.ok("POST", f"/api/v1/app/{app_id}/msg", {"eventType": "order.paid", "payload": {"order": "A-1", "status": "paid"}})
    receiver.wait_for("/hook", 2)
    tab(page, "Webhooks").click()
    expect(webhook(page, "Warehouse")).to_contain_text("Last failure")
    expect(webhook(page, "Warehouse")).to_contain_text("HTTP 503")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    screenshot(page, "console-webhooks")

    # The morning check, across applications: the failing webhook, since when, and why.
    # (Herald marks the streak just after recording the attempt: the screen is opened once
    # the API shows it, as a person would look again.)
    for _ in range(100):
        failing = herald.ok("GET", "/api/v1/endpoint-health")["failing"]
        if failing and failing[0]["lastFailure"]:
            break
        time.sleep(0.05)
    menu(page, "Failing endpoints").click()
    failing = page.get_by_role("region", name="Failing now")
    expect(failing.get_by_role("row")).to_have_count(2)
    expect(failing).to_contain_text("Acme Shop")
    expect(failing).to_contain_text("Warehouse")
    expect(failing).to_contain_text("HTTP 503")
    screenshot(page, "console-failing")
    failing.get_by_role("link", name="Acme Shop").click()
    open_message(page, tab(page, "Delivery log"), second["id"])
    delivery = page.locator("section.delivery")
    expect(delivery).to_contain_text("Failed: HTTP 503")
    delivery.get_by_role("button", name="Response").click()
    expect(delivery.locator("pre.response")).to_have_text(f"maintenance window {XSS}")

    # Fixed, resent, delivered.
    receiver.answer(200, b"thanks")
    delivery.get_by_role("button", name="Resend").click()
    receiver.wait_for("/hook", 3)
    expect(page.locator("section.delivery tr.attempt")).to_have_count(2)
    expect(page.locator("section.delivery")).to_contain_text("Succeeded")
    expect(page.locator("section.delivery .heading .badge")).to_have_text("Delivered")
    for _ in range(100):
        if not herald.ok("GET", "/api/v1/endpoint-health")["failing"]:
            break
        time.sleep(0.05)
    menu(page, "Failing endpoints").click()
    expect(page.get_by_role("region", name="Failing now")).to_contain_text("No endpoint is failing.")
    menu(page, "Applications").click()
    page.get_by_role("link", name="Acme Shop").click()

    # The delivery log filters on the server: by event type.
    tab(page, "Delivery log").click()
    page.get_by_label("Event type").fill("order.paid")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name=second["id"])).to_be_visible()
    expect(page.get_by_role("link", name=first["id"])).to_have_count(0)
    screenshot(page, "console-delivery-log")

    # The topics edited: order.created out, order.shipped in; a custom header shows as
    # the text it is.
    herald.ok("PUT", f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}/headers", {"headers": {"X-Note": XSS}})
    tab(page, "Webhooks").click()
    webhook(page, "Warehouse").get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Custom headers")).to_have_value(f"X-Note: {XSS}")
    dialog.get_by_label("order.created").uncheck()
    dialog.get_by_label("order.shipped").check()
    dialog.get_by_role("button", name="Save").click()
    expect(webhook(page, "Warehouse").locator(".tag")).to_have_text(["order.paid", "order.shipped"])
    endpoint = herald.ok("GET", f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}")
    assert endpoint["eventTypes"] == ["order.paid", "order.shipped"]
    assert endpoint["description"] == f"Orders for the warehouse {XSS}"

    # Deactivated: nothing more arrives, while a second webhook gets the same message.
    webhook(page, "Warehouse").get_by_role("button", name="Deactivate").click()
    expect(webhook(page, "Warehouse")).to_contain_text("Disabled")
    menu(page, "Failing endpoints").click()
    expect(page.get_by_role("region", name="Disabled")).to_contain_text("Warehouse")
    menu(page, "Applications").click()
    page.get_by_role("link", name="Acme Shop").click()
    herald.ok("POST", f"/api/v1/app/{app_id}/endpoint", {"url": receiver.url + "/other", "name": "Audit"})
    herald.ok("POST", f"/api/v1/app/{app_id}/msg", {"eventType": "order.paid", "payload": {"order": "A-2"}})
    receiver.wait_for("/other", 1)
    assert receiver.count("/hook") == 3

    # Deleted, after confirming.
    webhook(page, "Warehouse").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete webhook").click()
    expect(webhook(page, "Warehouse")).to_have_count(0)
    status, _ = herald.api("GET", f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}")
    assert status == 404

    menu(page, "Applications").click()
    expect(page.get_by_role("link", name="Acme Shop")).to_be_visible()
    screenshot(page, "console-applications")

    # Nothing shown was ever run as HTML.
    assert page.evaluate("window.__xss") is None


def test_the_webhook_dialog_tries_a_filter_on_the_latest_message(herald, receiver, page):
    app = herald.ok("POST", "/api/v1/app", {"name": "Filters"})
    herald.ok("POST", f"/api/v1/app/{app['id']}/endpoint", {"url": receiver.url + "/f", "name": "Paid only"})
    herald.ok("POST", f"/api/v1/app/{app['id']}/msg", {"eventType": "order.paid", "payload": {"status": "paid", "total": 12}})
    receiver.wait_for("/f", 1)
    sign_in(page, herald)
    page.get_by_role("link", name="Filters").click()
    webhook(page, "Paid only").get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("More options").click()
    dialog.get_by_label("Filter", exact=True).fill(json.dumps({"payload.status": "refunded"}))
    dialog.get_by_role("button", name="Use the latest message").click()
    expect(dialog.get_by_label("Event type")).to_have_value("order.paid")
    dialog.get_by_role("button", name="Try the filter").click()
    expect(dialog.locator(".try-out")).to_contain_text("Would not be delivered.")
    dialog.get_by_label("Filter", exact=True).fill(json.dumps({"payload.status": "paid"}))
    dialog.get_by_role("button", name="Try the filter").click()
    expect(dialog.locator(".try-out")).to_contain_text("Would be delivered.")
    expect(dialog.locator(".try-out pre")).to_contain_text('"total": 12')
    # A filter that is not JSON is named, and nothing is saved.
    dialog.get_by_label("Filter", exact=True).fill("{status: paid")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("The filter is not JSON")


def test_the_application_search_runs_on_the_server(herald, page):
    # More applications than the first page holds; the one looked for is made last.
    for n in range(105):
        herald.ok("POST", "/api/v1/app", {"name": f"Filler {n}"})
    herald.ok("POST", "/api/v1/app", {"name": "Zephyr Books", "uid": "zephyr"})
    sign_in(page, herald)
    expect(page.get_by_role("row")).to_have_count(101)
    expect(page.get_by_role("link", name="Zephyr Books")).to_have_count(0)
    expect(page.get_by_role("button", name="Load more")).to_be_visible()
    page.get_by_label("Search applications").fill("ZEPHYR")
    expect(page.get_by_role("row")).to_have_count(2)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    expect(page.get_by_role("link", name="Zephyr Books")).to_be_visible()
    page.get_by_label("Search applications").fill("no such shop")
    expect(page.get_by_role("cell", name="No application matches.")).to_be_visible()
    status, answer = herald.api("GET", "/api/v1/app?search=")
    assert status == 422 and answer["detail"][0]["loc"] == ["query", "search"]


def press_tab_to(page, name, limit=60):
    """Tabs forward until the focused control is called `name`; fails if it never is."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("(document.activeElement.innerText || document.activeElement.value || '').trim()")
        if focused == name:
            # The focus is visible where it is.
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("", "none"), f"no visible focus on {name}"
            return
    raise AssertionError(f"{name} cannot be reached with Tab")


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden')
  .filter((el) => {
    if (el.tagName === 'BUTTON') return !el.textContent.trim() && !el.getAttribute('aria-label');
    if (el.type === 'checkbox') return !el.closest('label') && !el.labels.length;
    return !el.labels.length && !el.getAttribute('aria-label');
  })
  .map((el) => el.outerHTML)"""


def test_the_console_works_by_keyboard_alone_and_every_control_is_labelled(herald, receiver, page):
    herald.ok("POST", "/api/v1/event-type", {"name": "order.created", "description": "A new order"})
    page.goto(herald.url + "/ui")
    # The token field has the focus; Enter signs in.
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []

    press_tab_to(page, "New application")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.type("Keyboard Shop")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Keyboard Shop")).to_be_visible()

    press_tab_to(page, "Create webhook")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    # Everything in the dialog, the folded options too, has a label.
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    dialog.locator("details").evaluate("d => { d.open = true }")
    assert page.evaluate(UNLABELLED) == []
    dialog.locator("details").evaluate("d => { d.open = false }")
    page.keyboard.type("Typed")
    page.keyboard.press("Tab")
    page.keyboard.type("Made without a mouse")
    page.keyboard.press("Tab")
    page.keyboard.type(receiver.url + "/kb")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first topic: order.created
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # in the URL field: submits
    card = page.get_by_role("region", name="Typed")
    expect(card).to_contain_text(receiver.url + "/kb")
    expect(card.locator(".tag")).to_have_text(["order.created"])

    # Escape closes a dialog, and the page is usable again.
    press_tab_to(page, "Edit")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    press_tab_to(page, "Deactivate")
    page.keyboard.press("Enter")
    expect(card).to_contain_text("Disabled")

    # The other screens' controls are labelled too.
    herald.ok("POST", f"/api/v1/app/{page.url.split('/apps/')[1]}/msg", {"eventType": "order.created", "payload": {"n": 1}})
    tab(page, "Delivery log").click()
    expect(page.get_by_role("button", name="Filter")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    menu(page, "Failing endpoints").click()
    expect(page.get_by_role("region", name="Disabled")).to_contain_text("Typed")
    menu(page, "Event types").click()
    page.get_by_role("button", name="New event type").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []


def test_webhooks_come_fifty_at_a_time(herald, receiver, page):
    app = herald.ok("POST", "/api/v1/app", {"name": "Many hooks"})
    for n in range(55):
        herald.ok("POST", f"/api/v1/app/{app['id']}/endpoint", {"url": f"{receiver.url}/h{n}", "name": f"Hook {n:02}"})
    sign_in(page, herald)
    page.get_by_role("link", name="Many hooks").click()
    cards = page.locator("section.card")
    expect(cards).to_have_count(50)
    # Each card's health came in the page's one call.
    expect(cards.nth(49)).to_contain_text("No deliveries")
    page.get_by_role("button", name="Load more").click()
    expect(cards).to_have_count(55)
    expect(cards.nth(54)).to_contain_text("No deliveries")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()


def test_an_event_type_enforces_its_schema_from_the_console(herald, page):
    app = herald.ok("POST", "/api/v1/app", {"name": "Contracts"})
    sign_in(page, herald)
    menu(page, "Event types").click()
    page.get_by_role("button", name="New event type").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill("invoice.issued")
    dialog.get_by_label("Description").fill("An invoice went out")
    dialog.get_by_label("JSON schema").fill('{"type": "object", "required": ["invoice"]}')
    dialog.get_by_label("Enforce the schema").check()
    dialog.get_by_role("button", name="Save").click()
    card = page.get_by_role("region", name="invoice.issued")
    expect(card.locator(".badge")).to_have_text(["Schema enforced"])
    status, err = herald.api("POST", f"/api/v1/app/{app['id']}/msg", {"eventType": "invoice.issued", "payload": {"total": 3}})
    assert status == 422 and err["detail"][0]["loc"] == ["body", "payload", "invoice"], err
    # Turned off in the dialog: accepted.
    card.get_by_role("button", name="Edit").click()
    page.get_by_role("dialog").get_by_label("Enforce the schema").uncheck()
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    expect(card.locator(".badge")).to_have_count(0)
    herald.ok("POST", f"/api/v1/app/{app['id']}/msg", {"eventType": "invoice.issued", "payload": {"total": 3}})
