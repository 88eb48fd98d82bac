//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Written out here rather than derived with `utoipa`: the API is small, the document is one table
//! ([`ROUTES`]) plus a few schemas, and the derive would add a proc-macro dependency tree and an
//! annotation on every handler for the same result. An integration test calls every route listed
//! here against the real router, so the document cannot drift from what is served.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::extract::Json;

/// (method, path, summary, request schema, response schema, who may call it).
pub type Route = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    Access,
);

pub const ROUTES: &[Route] = &[
    (
        "get",
        "/api/items",
        "List items by id (cursor pagination)",
        None,
        "ItemPage",
        Access::Read,
    ),
    (
        "post",
        "/api/items",
        "Create or replace one item",
        Some("ItemInput"),
        "Item",
        Access::Write,
    ),
    (
        "post",
        "/api/items/batch",
        "Create or replace up to 10,000 items atomically",
        Some("ItemInputBatch"),
        "Upserted",
        Access::Write,
    ),
    (
        "get",
        "/api/items/{id}",
        "Get an item",
        None,
        "Item",
        Access::Read,
    ),
    (
        "patch",
        "/api/items/{id}",
        "Change some fields of an item",
        Some("ItemPatch"),
        "Item",
        Access::Write,
    ),
    (
        "delete",
        "/api/items/{id}",
        "Delete an item and its feedback",
        None,
        "Empty",
        Access::Write,
    ),
    (
        "get",
        "/api/items/{id}/feedback",
        "List an item's feedback",
        None,
        "FeedbackPage",
        Access::Read,
    ),
    (
        "get",
        "/api/users",
        "List users by id (cursor pagination)",
        None,
        "UserPage",
        Access::Read,
    ),
    (
        "post",
        "/api/users",
        "Create or replace one user",
        Some("UserInput"),
        "User",
        Access::Write,
    ),
    (
        "post",
        "/api/users/batch",
        "Create or replace up to 10,000 users atomically",
        Some("UserInputBatch"),
        "Upserted",
        Access::Write,
    ),
    (
        "get",
        "/api/users/{id}",
        "Get a user",
        None,
        "User",
        Access::Read,
    ),
    (
        "patch",
        "/api/users/{id}",
        "Change a user's labels",
        Some("UserPatch"),
        "User",
        Access::Write,
    ),
    (
        "delete",
        "/api/users/{id}",
        "Delete a user and their feedback",
        None,
        "Empty",
        Access::Write,
    ),
    (
        "get",
        "/api/users/{id}/feedback",
        "List a user's feedback",
        None,
        "FeedbackPage",
        Access::Read,
    ),
    (
        "post",
        "/api/feedback",
        "Insert up to 10,000 feedback events; answered after commit",
        Some("FeedbackBatch"),
        "Inserted",
        Access::Write,
    ),
    (
        "delete",
        "/api/feedback/{user_id}/{item_id}",
        "Delete a user's feedback on an item (?type= for one type)",
        None,
        "Deleted",
        Access::Write,
    ),
    (
        "get",
        "/api/recommend/{user_id}",
        "Recommendations for a user (?n=&category=&exclude=&fields=)",
        None,
        "Recommendations",
        Access::Read,
    ),
    (
        "post",
        "/api/recommend/session",
        "Recommendations for an anonymous visitor from the items of their session",
        Some("SessionRequest"),
        "Recommendations",
        Access::Read,
    ),
    (
        "get",
        "/api/items/{id}/similar",
        "Items like this one (?n=&category=&exclude=&fields=)",
        None,
        "Similar",
        Access::Read,
    ),
    (
        "get",
        "/api/popular",
        "Most popular items (?n=&category=&exclude=&fields=)",
        None,
        "Recommendations",
        Access::Read,
    ),
    (
        "get",
        "/api/latest",
        "Newest items (?n=&category=&exclude=&fields=)",
        None,
        "Recommendations",
        Access::Read,
    ),
    (
        "get",
        "/api/admin/pool",
        "The connection pool's state",
        None,
        "PoolStatus",
        Access::Write,
    ),
    (
        "post",
        "/api/admin/pool/reset",
        "Rebuild the pool gracefully: new checkouts use a new pool, busy connections finish on the old one",
        None,
        "Object",
        Access::Write,
    ),
    (
        "get",
        "/api/admin/cluster",
        "This replica's cluster membership: budget, live replicas with their ceilings, installed snapshot",
        None,
        "Object",
        Access::Write,
    ),
    (
        "get",
        "/api/admin/dashboard",
        "What the dashboard draws: pool status, per-engine latency histograms, feedback and experiment counters, training runs with validation scores",
        None,
        "Object",
        Access::Write,
    ),
    (
        "get",
        "/api/admin/users/{id}/overview",
        "One user for the dashboard: newest history rows with titles, and each engine's list (?n=)",
        None,
        "Object",
        Access::Write,
    ),
    (
        "post",
        "/api/admin/train",
        "Start training now as a job: 202 with the job (and its Location); 409 while one runs",
        None,
        "TrainingJob",
        Access::Write,
    ),
    (
        "get",
        "/api/admin/train/{id}",
        "A training job: running, succeeded (with its snapshot) or failed (with the reason)",
        None,
        "TrainingJob",
        Access::Write,
    ),
    (
        "get",
        "/health/live",
        "Liveness",
        None,
        "Status",
        Access::Open,
    ),
    (
        "get",
        "/health/ready",
        "Readiness: database reachable, migrations current",
        None,
        "Status",
        Access::Open,
    ),
    (
        "get",
        "/metrics",
        "Prometheus metrics (text format)",
        None,
        "Text",
        Access::Open,
    ),
    (
        "get",
        "/dashboard",
        "Live dashboard page (HTML, assets embedded): pool, waiting, acquire wait, engines, training",
        None,
        "Text",
        Access::Open,
    ),
    (
        "get",
        "/openapi.json",
        "This document",
        None,
        "Object",
        Access::Open,
    ),
];

/// Who may call a route when an API key is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Always open.
    Open,
    /// Open unless `http.protect_reads` is on.
    Read,
    /// Requires the key.
    Write,
}

fn parameters(path: &str, method: &str) -> Vec<Value> {
    let mut out: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = if path.starts_with("/api/admin/train/") {
                json!({ "type": "integer", "minimum": 1 })
            } else {
                json!({ "type": "string", "minLength": 1, "maxLength": 256 })
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    let query = |name: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "schema": schema });
    if method == "get"
        && (path.ends_with("/feedback") || path == "/api/items" || path == "/api/users")
    {
        out.push(query("cursor", json!({ "type": "string" })));
        out.push(query(
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
        ));
    }
    let listing = path.starts_with("/api/recommend/{") || path.ends_with("/similar");
    if listing || path == "/api/popular" || path == "/api/latest" {
        out.push(query(
            "n",
            json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 10 }),
        ));
        out.push(query(
            "category",
            json!({ "type": "array", "items": { "type": "string" } }),
        ));
        out.push(query(
            "exclude",
            json!({ "type": "array", "items": { "type": "string" } }),
        ));
        out.push(query("fields", item_fields()));
        if path.starts_with("/api/recommend") {
            let engines = json!({ "type": "string", "enum": ["auto", "fast", "quality", "enhanced", "smart", "popularity"], "default": "auto" });
            out.push(query("engine", engines));
        }
    }
    if path.starts_with("/api/feedback/") {
        out.push(query(
            "type",
            json!({ "type": "string", "minLength": 1, "maxLength": 64 }),
        ));
    }
    out
}

/// `fields=`: the item fields returned with each recommendation.
fn item_fields() -> Value {
    json!({ "type": "array", "items": { "type": "string", "enum": crate::engine::Fields::NAMES },
        "description": "item fields to return with each recommendation, read from memory" })
}

fn schemas() -> Value {
    let id = json!({ "type": "string", "minLength": 1, "maxLength": 256, "description": "no control characters" });
    let labels = json!({ "type": "object", "additionalProperties": true });
    let fields = item_fields();
    let ts = json!({ "type": "string", "format": "date-time" });
    let item_props = json!({
        "id": id, "categories": { "type": "array", "items": id, "maxItems": 100 }, "labels": labels,
        "title": { "type": "string" }, "description": { "type": "string" }, "timestamp": ts, "hidden": { "type": "boolean" }
    });
    let mut patch_props = item_props.clone();
    patch_props.as_object_mut().unwrap().remove("id");
    let page = |of: &str| {
        json!({ "type": "object", "properties": {
        "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{of}") } },
        "next_cursor": { "type": "string" } } })
    };
    let count =
        |name: &str| json!({ "type": "object", "properties": { name: { "type": "integer" } } });
    // The training job's schema is its own value: inside the one `json!` below it would pass the
    // macro's recursion limit.
    let settings = json!({ "type": "array",
        "description": "each model's settings, chosen on the validation split within recommend.tuning_budget (model \"history\": recency inside a user's history, its half-life as a share of the history)",
        "items": { "type": "object", "properties": {
            "model": { "type": "string" }, "setting": { "type": "string" },
            "validation_ndcg": { "type": ["number", "null"] }, "tried": { "type": "integer" },
            "stopped": { "type": ["string", "null"], "description": "why the search ended early" } } } });
    let training_job = json!({ "type": "object", "required": ["id", "status", "started_at"], "properties": {
            "id": { "type": "integer" }, "status": { "type": "string", "enum": ["running", "succeeded", "failed"] },
            "started_at": ts, "finished_at": ts, "error": { "type": "string" },
            "snapshot": { "type": "object", "properties": {
                "version": { "type": "integer" }, "trained_at": ts, "users": { "type": "integer" },
                "items": { "type": "integer" }, "interactions": { "type": "integer" },
                "fit_seconds": { "type": "number" },
                "settings": settings,
                "quality_weights": { "type": "object", "additionalProperties": { "type": "number" } },
                "short_histories": { "type": "string", "enum": ["neighbours", "blend"] } } } } });
    // One recommended item: the item fields `fields=` asked for are added beside its id, each as
    // `Item` has it (read from memory).
    let recommended = json!({ "type": "object", "required": ["id", "score", "reason"], "properties": {
        "id": { "type": "string" }, "score": { "type": "number" }, "reason": { "type": "string" },
        "reason_item": { "type": "string", "description": "id of the item the reason names by its title" },
        "title": { "type": "string" }, "categories": { "type": "array", "items": { "type": "string" } }, "labels": labels, "timestamp": ts } });
    json!({
        "Recommended": recommended,
        "Item": { "type": "object", "properties": item_props, "required": ["id", "categories", "labels", "title", "description", "timestamp", "hidden"] },
        "ItemInput": { "type": "object", "properties": item_props, "required": ["id"], "additionalProperties": false },
        "ItemInputBatch": { "type": "array", "items": { "$ref": "#/components/schemas/ItemInput" }, "minItems": 1, "maxItems": 10000, "x-unique-by": "id", "description": "ids are unique within a batch" },
        "ItemPatch": { "type": "object", "properties": patch_props, "additionalProperties": false },
        "ItemPage": page("Item"),
        "User": { "type": "object", "properties": { "id": id, "labels": labels, "created_at": ts } },
        "UserInput": { "type": "object", "properties": { "id": id, "labels": labels }, "required": ["id"], "additionalProperties": false },
        "UserInputBatch": { "type": "array", "items": { "$ref": "#/components/schemas/UserInput" }, "minItems": 1, "maxItems": 10000, "x-unique-by": "id", "description": "ids are unique within a batch" },
        "UserPatch": { "type": "object", "properties": { "labels": labels }, "additionalProperties": false },
        "UserPage": page("User"),
        "Feedback": { "type": "object", "properties": {
            "user_id": id, "item_id": id, "type": { "type": "string", "minLength": 1, "maxLength": 64 },
            "value": { "type": "number", "default": 1.0 }, "timestamp": ts },
            "required": ["user_id", "item_id", "type"], "additionalProperties": false },
        "FeedbackBatch": { "type": "array", "items": { "$ref": "#/components/schemas/Feedback" }, "minItems": 1, "maxItems": 10000 },
        "FeedbackPage": page("Feedback"),
        "Recommendations": { "type": "object", "properties": {
            "user_id": { "type": "string" }, "engine": { "type": "string" },
            "route": { "type": "string", "enum": ["new_user", "short_history", "established"] },
            "variant": { "type": "string" }, "cached": { "type": "boolean" }, "fallback": { "type": "boolean" },
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Recommended" } } } },
        "SessionRequest": { "type": "object", "required": ["items"], "additionalProperties": false, "properties": {
            "items": { "type": "array", "items": id, "maxItems": 1000 }, "n": { "type": "integer", "minimum": 1, "maximum": 1000 },
            "category": { "type": "array", "items": { "type": "string" } }, "exclude": { "type": "array", "items": { "type": "string" } },
            "fields": fields,
            "engine": { "type": "string", "enum": ["auto", "fast", "quality", "enhanced", "smart", "popularity"] } } },
        "Similar": { "type": "object", "properties": {
            "item_id": { "type": "string" },
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Recommended" } } } },
        "Upserted": count("upserted"),
        "Inserted": count("inserted"),
        "Deleted": count("deleted"),
        "PoolStatus": { "type": "object", "additionalProperties": true },
        "Status": { "type": "object", "properties": { "status": { "type": "string" } } },
        "TrainingJob": training_job,
        "Object": { "type": "object" },
        "Text": { "type": "string" },
        "Empty": { "type": "null" },
        "Error": { "type": "object", "required": ["error", "message"], "properties": {
            "error": { "type": "string", "description": "machine-readable code" },
            "message": { "type": "string" },
            "field": { "type": "string", "description": "JSON path or parameter at fault" } } }
    })
}

fn build() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, request, response, access) in ROUTES {
        // Starting a job answers 202 Accepted; everything else 200.
        let ok = match (*method, *response) {
            ("post", _) if *path == "/api/admin/train" => "202",
            (_, "Empty") => "204",
            _ => "200",
        };
        // The two pages that are not JSON say what they are.
        let media = match *path {
            "/metrics" => "text/plain",
            "/dashboard" => "text/html",
            _ => "application/json",
        };
        let mut op = json!({
            "summary": summary,
            "parameters": parameters(path, method),
            "responses": {
                ok: if *response == "Empty" { json!({ "description": "Done; no body" }) } else {
                    json!({ "description": "OK", "content": { media: { "schema": { "$ref": format!("#/components/schemas/{response}") } } } }) },
                "4XX": { "description": "Bad input, unknown id or missing key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "503": { "description": "Database busy: retry after the Retry-After header", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        if let Some(req) = request {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{req}") } } } });
        }
        if *access != Access::Open {
            op["security"] = json!([{ "apiKey": [] }, { "bearer": [] }]);
        }
        paths.entry(path.to_string()).or_insert_with(|| json!({}))[method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "reco", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Recommendation server: items, users, feedback, recommendations served from memory." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
                "bearer": { "type": "http", "scheme": "bearer" }
            }
        }
    })
}

pub async fn document() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(build).clone())
}
