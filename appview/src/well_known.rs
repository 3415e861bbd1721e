//! `/.well-known/did.json`: the did:web document of this service, so a PDS can resolve our
//! service DID and proxy its accounts' requests to us (`atproto-proxy: <did>#plyr_appview`).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use url::Url;

use crate::error::XrpcError;

/// The service id in our DID document and in `atproto-proxy` headers.
pub const SERVICE_ID: &str = "plyr_appview";
/// The service type in our DID document.
const SERVICE_TYPE: &str = "PlyrAppView";

/// Who this service is on the network: its DID and the public URL its XRPC is served at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIdentity {
    did: String,
    endpoint: Url,
}

impl ServiceIdentity {
    /// `did` is `did:web:<host>` (a port written `%3A`); `endpoint` defaults to
    /// `https://<host>`. Other DID methods are published elsewhere, so they need an endpoint
    /// only for the record and get no document here.
    pub fn new(did: &str, endpoint: Option<Url>) -> Result<ServiceIdentity, String> {
        let endpoint = match (endpoint, did.strip_prefix("did:web:")) {
            (Some(url), _) => url,
            (None, Some(host)) => {
                if host.contains(':') {
                    return Err(format!("{did}: did:web with a path is not a service DID"));
                }
                let host = host.replace("%3A", ":").replace("%3a", ":");
                Url::parse(&format!("https://{host}"))
                    .map_err(|e| format!("{did}: not a usable host: {e}"))?
            }
            (None, None) => return Err(format!("{did}: give the public URL for a non-web DID")),
        };
        Ok(ServiceIdentity {
            did: did.to_owned(),
            endpoint,
        })
    }

    /// The service DID.
    pub fn did(&self) -> &str {
        &self.did
    }

    /// The DID document, for a did:web service.
    fn document(&self) -> Option<Value> {
        self.did.starts_with("did:web:").then(|| {
            let endpoint = self.endpoint.as_str().trim_end_matches('/');
            json!({
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": self.did,
                "service": [{
                    "id": format!("#{SERVICE_ID}"),
                    "type": SERVICE_TYPE,
                    "serviceEndpoint": endpoint,
                }],
            })
        })
    }
}

/// `GET /.well-known/did.json`: our did:web document, or 404 when the service has no did:web.
pub async fn did_json(
    State(identity): State<Option<ServiceIdentity>>,
) -> Result<Json<Value>, XrpcError> {
    identity
        .as_ref()
        .and_then(ServiceIdentity::document)
        .map(Json)
        .ok_or_else(|| XrpcError::NotFound("this service has no did:web identity".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_web_documents_name_the_service_endpoint() {
        let cases = [
            (
                "did:web:api.plyr.example",
                None,
                Some("https://api.plyr.example"),
            ),
            (
                "did:web:localhost%3A2584",
                None,
                Some("https://localhost:2584"),
            ),
            (
                "did:web:api.plyr.example",
                Some("http://127.0.0.1:2584/"),
                Some("http://127.0.0.1:2584"),
            ),
            (
                "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
                Some("https://x.example"),
                None,
            ),
        ];
        for (did, endpoint, expected) in cases {
            let endpoint = endpoint.map(|e| Url::parse(e).expect("test url"));
            let identity = ServiceIdentity::new(did, endpoint).expect(did);
            let doc = identity.document();
            assert_eq!(
                doc.as_ref()
                    .map(|d| d["service"][0]["serviceEndpoint"].clone()),
                expected.map(Value::from),
                "{did}"
            );
            if let Some(doc) = doc {
                assert_eq!(doc["id"], did);
                assert_eq!(doc["service"][0]["id"], "#plyr_appview");
            }
        }
        assert!(ServiceIdentity::new("did:web:host.example:path", None).is_err());
        assert!(ServiceIdentity::new("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", None).is_err());
    }
}
