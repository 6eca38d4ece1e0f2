//! The `entities` scenario's events: a ~5 KB repair case (nested `orderData`,
//! `productData`, `consumer`, `repair` objects, a few arrays) and its successive versions,
//! each with ~10 % of its leaf values changed. Everything is derived from the entity's
//! index and the version number, so runs publish the same events.
//!
//! Every version sets its own `version` counter and `updatedAt`, so any two versions of
//! a case differ, whatever order concurrent publishers deliver them in: every update is
//! delivered to a diff endpoint.

use serde_json::{Value, json};

/// Share of a case's leaf values (scalars and arrays, which a diff treats as one value)
/// that change from one version to the next.
pub(crate) const CHANGED: f64 = 0.10;

/// splitmix64: a small deterministic generator, so events do not depend on `rand`'s
/// algorithms or a seed from the environment.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    /// `len` letters and digits.
    fn word(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| CHARS[self.below(CHARS.len())] as char)
            .collect()
    }
}

fn timestamp(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(1_740_816_000 + seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The case's identity key (the diff endpoint's `diffKeep`) and `entityId`.
pub(crate) fn guid(entity: usize) -> String {
    let mut rng = Rng::new(entity as u64);
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// The statuses a case went through before it reached the workshop.
const HISTORY: [&str; 4] = ["created", "registered", "label-sent", "received"];

/// Version 0 of case `entity`: about 5 KB of JSON.
pub(crate) fn case(entity: usize) -> Value {
    let mut r = Rng::new(0x00ca_5e00 + entity as u64);
    let first = r.pick(&[
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances",
    ]);
    let last = r.pick(&[
        "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth",
    ]);
    let city = r.pick(&["Berlin", "Hamburg", "München", "Köln", "Leipzig", "Dresden"]);
    let created = entity as i64 * 97;
    let specs: serde_json::Map<String, Value> = [
        "batteryCapacity",
        "batteryCycles",
        "screenSize",
        "resolution",
        "storage",
        "memory",
        "processor",
        "weight",
        "dimensions",
        "wifi",
        "bluetooth",
        "modem",
        "cameraMain",
        "cameraFront",
        "chargingPort",
        "operatingSystem",
    ]
    .iter()
    .map(|k| (k.to_string(), json!(r.word(12))))
    .collect();
    let custom: serde_json::Map<String, Value> = (1..=20)
        .map(|k| (format!("field{k:02}"), json!(r.word(12))))
        .collect();
    let order = json!({
        "id": format!("ord-{entity:06}"),
        "refNo": format!("R{:09}", r.below(1_000_000_000)),
        "serial": r.word(14),
        "purchaseDate": "2024-11-02",
        "purchasePrice": 1299.0,
        "currency": "EUR",
        "invoiceNumber": format!("INV-{}", r.word(10)),
        "paymentMethod": "card",
        "payment": {
            "provider": "Adyen",
            "transactionId": r.word(24),
            "authorizedAt": timestamp(created - 86_400),
            "captured": true,
            "amount": 1299.0,
            "last4": format!("{:04}", r.below(10_000)),
        },
        "retailer": {
            "id": format!("ret-{:04}", r.below(10_000)),
            "name": "Elektro Markt",
            "storeId": format!("store-{:05}", r.below(100_000)),
            "city": city,
            "country": "DE",
        },
        "warranty": {
            "type": "manufacturer",
            "start": "2024-11-02",
            "end": "2026-11-02",
            "extended": false,
            "provider": "Garantie Plus",
            "contractNo": r.word(12),
        },
        "shipping": {
            "carrier": "DHL",
            "trackingNo": r.word(20),
            "method": "pickup",
            "labelCreated": false,
            "pickupDate": "2025-03-04",
            "weightKg": 0.9,
        },
        "lines": (0..3).map(|n| json!({
            "sku": format!("SKU-{:06}", r.below(1_000_000)),
            "description": format!("Replacement part {}", r.word(8)),
            "qty": n + 1,
            "price": 19.9 * (n + 1) as f64,
        })).collect::<Vec<_>>(),
    });
    let product = json!({
        "model": "Cybertruck",
        "brand": "Voltwerk",
        "category": "smartphone",
        "sku": format!("VW-{}", r.word(8)),
        "ean": format!("{:013}", r.next() % 10_000_000_000_000),
        "color": "graphite",
        "firmware": "4.2.1",
        "hardwareRevision": "C",
        "manufactureDate": "2024-08-19",
        "accessory": ["1180", "2210", "3305"],
        "diagnostics": {
            "batteryHealth": 71,
            "chargeCycles": 512,
            "lastChargeError": "E-CHG-07",
            "selfTest": "failed",
            "selfTestAt": timestamp(created + 7200),
            "sensorStatus": "ok",
            "storageUsedGb": 88.4,
            "bootCount": 1442,
            "crashReports": 3,
            "logUploadId": r.word(24),
        },
        "specs": specs,
        "condition": {
            "scratches": false,
            "dents": false,
            "screen": "intact",
            "housing": "minor wear",
            "completeness": "complete",
            "waterDamage": false,
        },
    });
    let consumer = json!({
        "id": format!("cus-{:07}", r.below(10_000_000)),
        "firstName": first,
        "lastName": last,
        "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
        "phone": format!("+49 30 {:08}", r.below(100_000_000)),
        "mobile": format!("+49 170 {:07}", r.below(10_000_000)),
        "address": {
            "street": "Unter den Linden",
            "houseNumber": format!("{}", 1 + r.below(200)),
            "zip": format!("{:05}", r.below(100_000)),
            "city": city,
            "region": "BE",
            "country": "DE",
        },
        "preferences": {
            "contact": "email",
            "language": "de",
            "newsletter": false,
            "sms": true,
            "callbackWindow": "09:00-12:00",
        },
        "billingAddress": {
            "street": "Karl-Marx-Allee",
            "houseNumber": format!("{}", 1 + r.below(200)),
            "zip": format!("{:05}", r.below(100_000)),
            "city": city,
            "region": "BE",
            "country": "DE",
        },
        "loyaltyTier": "silver",
    });
    let repair = json!({
        "technician": format!("tech-{:03}", r.below(1000)),
        "workshop": "Berlin Mitte",
        "diagnosis": "pending",
        "faultCode": format!("E{:04}", r.below(10_000)),
        "symptom": "Device does not charge; battery drains within two hours",
        "resolution": "",
        "estimatedCost": 89.0,
        "approvedCost": 0.0,
        "laborMinutes": 45,
        "partsOrdered": false,
        "parts": ["PN-44810", "PN-10022"],
        "checklist": {
            "visualInspection": true,
            "dataBackup": false,
            "factoryReset": false,
            "batteryTest": true,
            "screenTest": true,
            "audioTest": false,
            "cameraTest": false,
            "networkTest": false,
            "sealIntact": true,
            "photosTaken": true,
            "customerInformed": false,
            "qualityCheck": false,
        },
        "costs": {"labor": 60.0, "parts": 29.0, "shipping": 0.0, "tax": 16.91, "total": 105.91},
    });
    json!({
        "guid": guid(entity),
        "caseNumber": format!("RC-{:07}", 1_000_000 + entity),
        "key": "new",
        "status": "received",
        "subStatus": "awaiting-diagnosis",
        "priority": "normal",
        "channel": "retail",
        "language": "de-DE",
        "version": 0,
        "createdAt": timestamp(created),
        "updatedAt": timestamp(created),
        "slaDueAt": timestamp(created + 5 * 86_400),
        "escalated": false,
        "assignedTeam": "workshop-berlin-2",
        "externalRef": r.word(16),
        "orderData": order,
        "productData": product,
        "consumer": consumer,
        "repair": repair,
        "history": HISTORY.iter().enumerate().map(|(n, status)| json!({
            "status": status,
            "at": timestamp(created + n as i64 * 3600),
            "by": format!("agent-{:03}", r.below(1000)),
        })).collect::<Vec<_>>(),
        "tags": ["warranty", "priority-normal", "retail"],
        "customFields": custom,
        "notes": format!("Customer reports that the device stopped charging after a firmware update. {}", r.word(280)),
    })
}

/// JSON pointers to every leaf of `value`: scalars, and arrays (one value to a diff).
pub(crate) fn leaves(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: &mut String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let len = at.len();
                    at.push('/');
                    at.push_str(key);
                    walk(inner, at, out);
                    at.truncate(len);
                }
            }
            _ => out.push(at.clone()),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut String::new(), &mut out);
    out
}

/// Replaces `value` with a different value of the same kind and about the same size.
fn change(value: &mut Value, r: &mut Rng) {
    match value {
        Value::String(s) => {
            let len = s.chars().count().max(1);
            let mut new = r.word(len);
            while new == *s {
                new = r.word(len);
            }
            *s = new;
        }
        Value::Number(n) => {
            *value = match n.as_i64() {
                Some(i) => json!(i + 1 + r.below(50) as i64),
                None => json!(n.as_f64().unwrap_or(0.0) + 1.0 + r.below(50) as f64),
            };
        }
        Value::Bool(b) => *b = !*b,
        Value::Array(items) if !items.is_empty() => {
            let i = r.below(items.len());
            change(&mut items[i], r);
        }
        Value::Object(map) if !map.is_empty() => {
            let i = r.below(map.len());
            if let Some(inner) = map.values_mut().nth(i) {
                change(inner, r);
            }
        }
        _ => *value = json!(r.word(8)),
    }
}

/// Turns version `version - 1` of case `entity` into version `version`: the `version`
/// counter and `updatedAt` change, and as many other leaves (never `guid`) as make ~10 %
/// of all leaves in total.
pub(crate) fn next_version(case: &mut Value, entity: usize, version: usize) {
    let mut r = Rng::new(((entity as u64) << 32) ^ version as u64);
    let mut pool: Vec<String> = leaves(case)
        .into_iter()
        .filter(|p| !matches!(p.as_str(), "/guid" | "/version" | "/updatedAt"))
        .collect();
    let total = pool.len() + 3;
    let others = ((total as f64 * CHANGED).round() as usize).saturating_sub(2);
    for k in 0..others.min(pool.len()) {
        let j = k + r.below(pool.len() - k);
        pool.swap(k, j);
        if let Some(leaf) = case.pointer_mut(&pool[k]) {
            change(leaf, &mut r);
        }
    }
    case["version"] = json!(version);
    let created = entity as i64 * 97;
    case["updatedAt"] = json!(timestamp(created + 60 * version as i64));
}

/// Versions `0..versions` of case `entity`, as JSON text.
pub(crate) fn versions(entity: usize, versions: usize) -> Vec<String> {
    let mut case = case(entity);
    (0..versions)
        .map(|v| {
            if v > 0 {
                next_version(&mut case, entity, v);
            }
            case.to_string()
        })
        .collect()
}

/// The bodies of `n` publish requests about `entities` cases: request `i` is version
/// `i / entities` of case `i % entities`. With `entity_ids`, each names its case as
/// `entityId` (Herald keeps snapshots and diffs); without, the same payloads are plain
/// events.
pub(crate) fn bodies(n: usize, entities: usize, entity_ids: bool) -> Vec<Vec<u8>> {
    let mut cases: Vec<Value> = (0..entities.min(n)).map(case).collect();
    (0..n)
        .map(|i| {
            let (entity, version) = (i % entities, i / entities);
            let case = &mut cases[entity];
            if version > 0 {
                next_version(case, entity, version);
            }
            let mut body = json!({"eventType": "case.updated", "payload": case});
            if entity_ids {
                body["entityId"] = json!(guid(entity));
                body["entityType"] = json!("case");
            }
            serde_json::to_vec(&body).expect("json")
        })
        .collect()
}
