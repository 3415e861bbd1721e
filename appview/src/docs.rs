//! API docs generated from the lexicon documents: an OpenAPI 3.1 description of every XRPC
//! query and procedure (params, input, output, errors) at `/openapi.json`, and a plain HTML
//! rendering of it at `/docs` (no scripts, nothing fetched from elsewhere).

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use plyr_lexicons::Catalog;
use serde_json::{Map, Value, json};

/// Built once from the embedded lexicons, on first request.
static OPENAPI: LazyLock<Arc<Value>> = LazyLock::new(|| Arc::new(openapi(documents())));

/// Built once from [`OPENAPI`].
static HTML: LazyLock<String> = LazyLock::new(|| html(&OPENAPI));

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<Value> {
    Json(Value::clone(&OPENAPI))
}

/// `GET /docs`.
pub async fn docs_html() -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        HTML.as_str(),
    )
        .into_response()
}

/// Every embedded lexicon document that parses (the lexicons crate's tests keep that all).
fn documents() -> Vec<Value> {
    Catalog::plyr_sources()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect()
}

/// The OpenAPI document of `docs`: one path per query (GET) and procedure (POST), one
/// component schema per other definition.
pub fn openapi(docs: Vec<Value>) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "XrpcError".to_owned(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}}
        }),
    );
    for doc in &docs {
        let Some(id) = doc.get("id").and_then(Value::as_str) else {
            continue;
        };
        let Some(defs) = doc.get("defs").and_then(Value::as_object) else {
            continue;
        };
        for (name, def) in defs {
            match def.get("type").and_then(Value::as_str) {
                Some(kind @ ("query" | "procedure")) if name == "main" => {
                    let verb = if kind == "query" { "get" } else { "post" };
                    let op = operation(id, def, kind);
                    paths.insert(format!("/xrpc/{id}"), json!({ verb: op }));
                }
                Some("record") => {
                    let record = def.get("record").cloned().unwrap_or(Value::Null);
                    let mut schema = schema(id, &record);
                    describe(&mut schema, def);
                    schemas.insert(component(id, name), schema);
                }
                Some("subscription") => {}
                _ => {
                    schemas.insert(component(id, name), schema(id, def));
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "plyr.fm AppView",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "XRPC methods of the open plyr.fm AppView, generated from their \
                            lexicon documents. Errors are {\"error\", \"message\"}."
        },
        "paths": paths,
        "components": {"schemas": schemas}
    })
}

/// The operation of a query or procedure `def` of document `id`.
fn operation(id: &str, def: &Value, kind: &str) -> Value {
    let mut op = Map::new();
    op.insert("operationId".to_owned(), json!(id));
    if let Some(d) = def.get("description") {
        op.insert("summary".to_owned(), d.clone());
    }
    op.insert("tags".to_owned(), json!([kind]));
    let params = def.get("parameters");
    let required: Vec<&str> = params
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let parameters: Vec<Value> = params
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| {
                    let mut p = json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": schema(id, prop),
                    });
                    if let Some(d) = prop.get("description") {
                        p["description"] = d.clone();
                    }
                    if prop.get("type").and_then(Value::as_str) == Some("array") {
                        p["style"] = json!("form");
                        p["explode"] = json!(true);
                    }
                    p
                })
                .collect()
        })
        .unwrap_or_default();
    op.insert("parameters".to_owned(), Value::Array(parameters));
    if let Some(input) = def.get("input") {
        op.insert(
            "requestBody".to_owned(),
            json!({"content": body(id, input)}),
        );
    }
    let mut responses = Map::new();
    let ok = match def.get("output") {
        Some(output) => json!({"description": "OK", "content": body(id, output)}),
        None => json!({"description": "OK"}),
    };
    responses.insert("200".to_owned(), ok);
    let errors: Vec<String> = def
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| {
                    let name = e.get("name")?.as_str()?;
                    Some(match e.get("description").and_then(Value::as_str) {
                        Some(d) => format!("{name}: {d}"),
                        None => name.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut bad = "InvalidRequest: bad or missing params".to_owned();
    for e in &errors {
        bad.push_str("; ");
        bad.push_str(e);
    }
    let error_body =
        json!({"application/json": {"schema": {"$ref": "#/components/schemas/XrpcError"}}});
    responses.insert(
        "400".to_owned(),
        json!({"description": bad, "content": error_body}),
    );
    responses.insert(
        "429".to_owned(),
        json!({"description": "RateLimitExceeded (see Retry-After)", "content": error_body}),
    );
    responses.insert(
        "500".to_owned(),
        json!({"description": "InternalServerError", "content": error_body}),
    );
    if !errors.is_empty() {
        op.insert("x-lexicon-errors".to_owned(), json!(errors));
    }
    op.insert("responses".to_owned(), Value::Object(responses));
    Value::Object(op)
}

/// A lexicon body (`encoding`, `schema`) as OpenAPI content.
fn body(id: &str, body: &Value) -> Value {
    let encoding = body
        .get("encoding")
        .and_then(Value::as_str)
        .unwrap_or("application/json");
    let schema = body.get("schema").map_or(json!({}), |s| schema(id, s));
    json!({ encoding: {"schema": schema} })
}

/// A lexicon type as JSON Schema, references resolved against document `id`.
fn schema(id: &str, lex: &Value) -> Value {
    let mut out = match lex.get("type").and_then(Value::as_str) {
        Some("object" | "params") => {
            let props: Map<String, Value> = lex
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.iter().map(|(k, v)| (k.clone(), schema(id, v))).collect())
                .unwrap_or_default();
            let mut o = json!({"type": "object", "properties": props});
            if let Some(r) = lex.get("required") {
                o["required"] = r.clone();
            }
            o
        }
        Some("array") => {
            let items = lex.get("items").map_or(json!({}), |i| schema(id, i));
            let mut o = json!({"type": "array", "items": items});
            copy(
                lex,
                &mut o,
                &[("minLength", "minItems"), ("maxLength", "maxItems")],
            );
            o
        }
        Some("string") => {
            let mut o = json!({"type": "string"});
            if let Some(format) = lex.get("format").and_then(Value::as_str) {
                o["format"] = json!(if format == "datetime" {
                    "date-time"
                } else {
                    format
                });
            }
            copy(
                lex,
                &mut o,
                &[
                    ("minLength", "minLength"),
                    ("maxLength", "maxLength"),
                    ("enum", "enum"),
                    ("default", "default"),
                    ("const", "const"),
                ],
            );
            if let Some(known) = lex.get("knownValues") {
                o["examples"] = known.clone();
            }
            o
        }
        Some(kind @ ("integer" | "boolean")) => {
            let mut o = json!({ "type": kind });
            copy(
                lex,
                &mut o,
                &[
                    ("minimum", "minimum"),
                    ("maximum", "maximum"),
                    ("default", "default"),
                    ("enum", "enum"),
                    ("const", "const"),
                ],
            );
            o
        }
        Some("ref") => {
            let target = lex.get("ref").and_then(Value::as_str).unwrap_or_default();
            json!({"$ref": reference(id, target)})
        }
        Some("union") => {
            let refs: Vec<Value> = lex
                .get("refs")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(|t| json!({"$ref": reference(id, t)}))
                        .collect()
                })
                .unwrap_or_default();
            json!({ "oneOf": refs })
        }
        Some("token") => json!({"type": "string", "const": id}),
        Some("blob") => json!({
            "type": "object",
            "description": "blob reference",
            "properties": {
                "$type": {"const": "blob"},
                "ref": {"type": "object", "properties": {"$link": {"type": "string"}}},
                "mimeType": {"type": "string"},
                "size": {"type": "integer"}
            }
        }),
        Some("cid-link") => {
            json!({"type": "object", "properties": {"$link": {"type": "string"}}})
        }
        Some("bytes") => {
            json!({"type": "object", "properties": {"$bytes": {"type": "string"}}})
        }
        // `unknown` and anything newer: any value.
        _ => json!({}),
    };
    describe(&mut out, lex);
    out
}

fn describe(out: &mut Value, lex: &Value) {
    if let (Some(d), Some(o)) = (lex.get("description"), out.as_object_mut()) {
        o.insert("description".to_owned(), d.clone());
    }
}

fn copy(from: &Value, to: &mut Value, keys: &[(&str, &str)]) {
    for (lex_key, json_key) in keys {
        if let Some(v) = from.get(*lex_key) {
            to[*json_key] = v.clone();
        }
    }
}

/// `#def`, `nsid#def` or `nsid` written in document `base`, as a component `$ref`.
fn reference(base: &str, target: &str) -> String {
    let (nsid, def) = match target.split_once('#') {
        Some(("", def)) => (base, def),
        Some((nsid, def)) => (nsid, def),
        None => (target, "main"),
    };
    format!("#/components/schemas/{}", component(nsid, def))
}

/// The component name of definition `def` of `nsid` (`#` is not allowed in names).
fn component(nsid: &str, def: &str) -> String {
    if def == "main" {
        nsid.to_owned()
    } else {
        format!("{nsid}.{def}")
    }
}

/// The HTML page: every method with its params and output, then every schema.
fn html(api: &Value) -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>plyr.fm AppView API</title>\
         <style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}\
         code,pre{font:13px ui-monospace,monospace}pre{background:#f4f4f4;padding:.7em;overflow:auto}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
         </style></head><body><h1>plyr.fm AppView API</h1>\
         <p>Generated from the lexicon documents. Machine-readable: \
         <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1).</p><h2>Methods</h2>",
    );
    let empty = Map::new();
    let paths = api["paths"].as_object().unwrap_or(&empty);
    for (path, item) in paths {
        let Some((verb, op)) = item.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let _ = write!(
            page,
            "<h3 id=\"{id}\"><code>{verb} {path}</code></h3>",
            id = escape(path.trim_start_matches("/xrpc/")),
            verb = verb.to_uppercase(),
            path = escape(path),
        );
        if let Some(summary) = op["summary"].as_str() {
            let _ = write!(page, "<p>{}</p>", escape(summary));
        }
        if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
            page.push_str(
                "<table><tr><th>param</th><th>type</th><th>required</th><th>about</th></tr>",
            );
            for p in params {
                let _ = write!(
                    page,
                    "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    escape(p["name"].as_str().unwrap_or_default()),
                    escape(&p["schema"].to_string()),
                    if p["required"].as_bool().unwrap_or(false) {
                        "yes"
                    } else {
                        ""
                    },
                    escape(p["description"].as_str().unwrap_or_default()),
                );
            }
            page.push_str("</table>");
        }
        if let Some(errors) = op["x-lexicon-errors"].as_array() {
            page.push_str("<p>Errors: ");
            for e in errors.iter().filter_map(Value::as_str) {
                let _ = write!(page, "<code>{}</code> ", escape(e));
            }
            page.push_str("</p>");
        }
        if let Some(content) = op["responses"]["200"]["content"].as_object() {
            for (encoding, media) in content {
                let pretty = serde_json::to_string_pretty(&media["schema"]).unwrap_or_default();
                let _ = write!(
                    page,
                    "<p>Output ({}):</p><pre>{}</pre>",
                    escape(encoding),
                    escape(&pretty)
                );
            }
        }
    }
    page.push_str("<h2>Schemas</h2>");
    let schemas = api["components"]["schemas"].as_object().unwrap_or(&empty);
    for (name, schema) in schemas {
        let pretty = serde_json::to_string_pretty(schema).unwrap_or_default();
        let _ = write!(
            page,
            "<h3 id=\"{n}\"><code>{n}</code></h3><pre>{}</pre>",
            escape(&pretty),
            n = escape(name),
        );
    }
    page.push_str("</body></html>");
    page
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lexicon_method_is_described_with_its_params() {
        let api = openapi(documents());
        let catalog = Catalog::plyr();
        let mut methods = 0;
        for doc in documents() {
            let id = doc["id"].as_str().expect("id");
            let main = &doc["defs"]["main"];
            let verb = match main["type"].as_str() {
                Some("query") => "get",
                Some("procedure") => "post",
                _ => continue,
            };
            assert!(catalog.get(id).is_some(), "{id} parses in the catalog too");
            methods += 1;
            let op = &api["paths"][format!("/xrpc/{id}")][verb];
            assert_eq!(op["operationId"], id, "{id} described");
            let mut want: Vec<&str> = main["parameters"]["properties"]
                .as_object()
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let mut got: Vec<&str> = op["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .map(|p| p["name"].as_str().expect("name"))
                .collect();
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "{id} params");
        }
        assert!(methods >= 10, "only {methods} methods found");
        let track = &api["paths"]["/xrpc/fm.plyr.feed.getTrack"]["get"];
        assert_eq!(
            track["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["track"]
                ["$ref"],
            "#/components/schemas/fm.plyr.feed.defs.trackView"
        );
        let uri = &track["parameters"][0];
        assert_eq!(
            (uri["name"].as_str(), uri["required"].as_bool()),
            (Some("uri"), Some(true))
        );
        assert!(
            api["components"]["schemas"]["fm.plyr.feed.defs.trackView"].is_object(),
            "referenced views are components"
        );
    }

    #[test]
    fn html_escapes_and_lists_methods() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let page = html(&openapi(documents()));
        assert!(page.contains("GET /xrpc/fm.plyr.feed.getLatestTracks"));
        assert!(!page.contains("<script"), "no scripts");
    }
}
