//! End-to-end resolution against real servers on loopback: an HTTP server (axum) playing the
//! PLC directory, a did:web host and handle hosts (routed by path and `Host` header), and a UDP
//! DNS responder answering `_atproto` TXT queries. No part of the resolver is mocked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::TXT;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use plyr_identity::{
    Did, Handle, IdentityError, IdentityErrorKind, RateLimit, RepoStatus, Resolver, ResolverConfig,
};
use plyr_repo::PublicKey;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

const K256_KEY: &str = "zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc";
const P256_KEY: &str = "zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo";

/// A did:plc made of one repeated base32 letter.
fn plc(letter: char) -> String {
    format!("did:plc:{}", letter.to_string().repeat(24))
}

fn did(s: &str) -> Result<Did> {
    Did::new(s).with_context(|| format!("fixture DID {s}"))
}

fn handle(s: &str) -> Result<Handle> {
    Handle::new(s).with_context(|| format!("fixture handle {s}"))
}

fn doc_json(did: &str, handle: &str, key: &str) -> String {
    doc_json_on(did, handle, key, "https://pds.example.com")
}

fn doc_json_on(did: &str, handle: &str, key: &str, pds: &str) -> String {
    serde_json::json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "alsoKnownAs": [format!("at://{handle}")],
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": key,
        }],
        "service": [
            {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds},
            {"id": "#plyr_appview", "type": "PlyrAppView", "serviceEndpoint": "https://api.plyr.example"},
        ],
    })
    .to_string()
}

fn kind<T>(result: Result<T, IdentityError>) -> Result<T, IdentityErrorKind> {
    result.map_err(|e| e.kind())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the HTTP server answers one route.
#[derive(Clone)]
enum Reply {
    Text(String),
    /// Chunked, with no Content-Length, so only the streaming cap can stop it.
    Streamed(Vec<u8>),
    /// Never answers (until the server stops).
    Stall,
    Redirect(String),
    /// A status code with a JSON body.
    Status(StatusCode, String),
}

/// What the HTTP server serves and what it saw. Routes are keyed by path (`/did:plc:...`), by
/// `host` + path for `/.well-known/...` (did:web documents and handles), and by `host` + path
/// + query for `/xrpc/...` (PDS methods).
#[derive(Default)]
struct World {
    routes: Mutex<HashMap<String, Reply>>,
    hits: Mutex<HashMap<String, usize>>,
    stop: CancellationToken,
}

impl World {
    fn route(&self, key: impl Into<String>, reply: Reply) {
        lock(&self.routes).insert(key.into(), reply);
    }

    fn hits(&self, key: &str) -> usize {
        lock(&self.hits).get(key).copied().unwrap_or_default()
    }
}

async fn serve(State(world): State<Arc<World>>, headers: HeaderMap, uri: Uri) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let path = uri.path();
    let key = if path.starts_with("/.well-known/") {
        format!("{host}{path}")
    } else if path.starts_with("/xrpc/") {
        format!("{host}{path}?{}", uri.query().unwrap_or_default())
    } else {
        path.to_owned()
    };
    *lock(&world.hits).entry(key.clone()).or_default() += 1;
    let reply = lock(&world.routes).get(&key).cloned();
    match reply {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Reply::Text(body)) => body.into_response(),
        Some(Reply::Streamed(bytes)) => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(1024).map(|c| Ok(c.to_vec())).collect();
            Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        Some(Reply::Stall) => {
            world.stop.cancelled().await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Some(Reply::Redirect(to)) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
        Some(Reply::Status(code, body)) => {
            (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

/// A UDP DNS responder: TXT answers for the names it knows, NXDOMAIN for everything else.
async fn answer_dns(
    socket: UdpSocket,
    txt: HashMap<String, String>,
    stop: CancellationToken,
) -> Result<()> {
    let mut buf = [0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            received = socket.recv_from(&mut buf) => received?,
            () = stop.cancelled() => return Ok(()),
        };
        let Some(bytes) = buf.get(..len) else {
            continue;
        };
        let Ok(query) = Message::from_vec(bytes) else {
            continue;
        };
        let mut response = Message::new();
        response
            .set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(query.op_code())
            .set_authoritative(true)
            .set_recursion_desired(query.recursion_desired())
            .set_recursion_available(true)
            .add_queries(query.queries().to_vec());
        let known = query.queries().first().and_then(|q| {
            let name = q.name().to_ascii().to_ascii_lowercase();
            (q.query_type() == RecordType::TXT)
                .then(|| txt.get(&name))
                .flatten()
                .map(|value| (q.name().clone(), value.clone()))
        });
        match known {
            Some((name, value)) => {
                response.add_answer(Record::from_rdata(
                    name,
                    60,
                    RData::TXT(TXT::new(vec![value])),
                ));
            }
            None => {
                response.set_response_code(ResponseCode::NXDomain);
            }
        }
        socket.send_to(&response.to_vec()?, peer).await?;
    }
}

/// The HTTP and DNS servers of one test.
struct Harness {
    http: SocketAddr,
    dns: SocketAddr,
    world: Arc<World>,
    http_task: JoinHandle<std::io::Result<()>>,
    dns_task: JoinHandle<Result<()>>,
}

impl Harness {
    /// Starts both servers; `txt` maps `_atproto.<handle>.` to a TXT value.
    async fn start(txt: &[(&str, &str)]) -> Result<Harness> {
        let world = Arc::new(World::default());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let http = listener.local_addr()?;
        let app = Router::new().fallback(serve).with_state(world.clone());
        let stop = world.stop.clone();
        let http_task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let dns = socket.local_addr()?;
        let txt = txt
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let dns_task = tokio::spawn(answer_dns(socket, txt, world.stop.clone()));
        Ok(Harness {
            http,
            dns,
            world,
            http_task,
            dns_task,
        })
    }

    /// Test mode against these servers, with short timeouts.
    fn config(&self) -> Result<ResolverConfig> {
        Ok(ResolverConfig {
            plc_url: Url::parse(&format!("http://{}", self.http))?,
            allow_loopback: true,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            dns_timeout: Duration::from_secs(2),
            dns_nameserver: Some(self.dns),
            handle_resolution_base: Some(Url::parse(&format!("http://{}", self.http))?),
            ..ResolverConfig::default()
        })
    }

    fn resolver(&self) -> Result<Resolver> {
        Ok(Resolver::new(self.config()?)?)
    }

    async fn stop(self) -> Result<()> {
        self.world.stop.cancel();
        self.http_task.await??;
        self.dns_task.await??;
        Ok(())
    }
}

#[tokio::test]
async fn plc_documents_resolve_are_cached_and_invalidated() -> Result<()> {
    let harness = Harness::start(&[]).await?;
    let (alice, bob) = (plc('a'), plc('b'));
    harness.world.route(
        format!("/{alice}"),
        Reply::Text(doc_json(&alice, "alice.test", K256_KEY)),
    );
    harness.world.route(
        format!("/{bob}"),
        Reply::Text(doc_json(&bob, "bob.test", P256_KEY)),
    );
    let resolver = harness.resolver()?;
    let alice_did = did(&alice)?;

    let doc = resolver.resolve_did(&alice_did).await?;
    assert_eq!(doc.id, alice);
    assert_eq!(
        doc.handle().map(|h| h.to_string()),
        Some("alice.test".into())
    );
    assert_eq!(
        doc.pds_endpoint().map(String::from),
        Some("https://pds.example.com/".into())
    );
    assert!(matches!(doc.signing_key(), Ok(PublicKey::K256(_))));
    let path = format!("/{alice}");
    assert_eq!(harness.world.hits(&path), 1);

    // A cache hit is the same document, with no request.
    let again = resolver.resolve_did(&alice_did).await?;
    assert!(Arc::ptr_eq(&doc, &again));
    assert_eq!(harness.world.hits(&path), 1);

    // An identity event forces a refetch; so does a refresh after a signature failure.
    resolver.invalidate(&alice_did).await;
    resolver.resolve_did(&alice_did).await?;
    assert_eq!(harness.world.hits(&path), 2);
    resolver.refresh_did(&alice_did).await?;
    assert_eq!(harness.world.hits(&path), 3);

    // Concurrent lookups of one DID share one fetch.
    let bob_did = did(&bob)?;
    let lookups = (0..5).map(|_| resolver.resolve_did(&bob_did));
    let docs = futures_util::future::join_all(lookups).await;
    assert!(docs.iter().all(|d| matches!(
        d.as_ref().map(|d| d.signing_key()),
        Ok(Ok(PublicKey::P256(_)))
    )));
    assert_eq!(harness.world.hits(&format!("/{bob}")), 1);

    harness.stop().await
}

#[tokio::test]
async fn did_web_documents_resolve_over_loopback() -> Result<()> {
    let harness = Harness::start(&[]).await?;
    let port = harness.http.port();
    let web = format!("did:web:localhost%3A{port}");
    let key = format!("localhost:{port}/.well-known/did.json");
    harness.world.route(
        key.clone(),
        Reply::Text(doc_json(&web, "music.test", P256_KEY)),
    );
    let resolver = harness.resolver()?;

    let doc = resolver.resolve_did(&did(&web)?).await?;
    assert_eq!(doc.id, web);
    assert_eq!(
        doc.service_endpoint("#plyr_appview").map(String::from),
        Some("https://api.plyr.example/".into())
    );
    assert!(matches!(doc.signing_key(), Ok(PublicKey::P256(_))));
    assert_eq!(harness.world.hits(&key), 1);

    harness.stop().await
}

#[tokio::test]
async fn bad_answers_are_rejected_by_kind() -> Result<()> {
    use IdentityErrorKind::*;
    let harness = Harness::start(&[]).await?;
    let port = harness.http.port();
    let world = &harness.world;
    let big_doc =
        doc_json(&plc('d'), &format!("{}.test", "x".repeat(60)), K256_KEY) + &" ".repeat(8192);
    let redirected = plc('h');
    world.route(
        format!("/{}", plc('c')),
        Reply::Text(doc_json(&plc('b'), "other.test", K256_KEY)),
    );
    world.route(format!("/{}", plc('d')), Reply::Text(big_doc.clone()));
    world.route(
        format!("/{}", plc('e')),
        Reply::Streamed(big_doc.into_bytes()),
    );
    world.route(format!("/{}", plc('f')), Reply::Stall);
    world.route(
        format!("/{}", plc('g')),
        Reply::Text("<html>not json</html>".into()),
    );
    // A redirect to another origin (same server, other host name) is not followed ...
    world.route(
        format!("/{redirected}"),
        Reply::Redirect(format!("http://localhost:{port}/moved")),
    );
    world.route(
        "/moved",
        Reply::Text(doc_json(&redirected, "moved.test", K256_KEY)),
    );
    // ... a same-origin one is.
    let same_origin = plc('i');
    world.route(
        format!("/{same_origin}"),
        Reply::Redirect("/moved-here".into()),
    );
    world.route(
        "/moved-here",
        Reply::Text(doc_json(&same_origin, "here.test", K256_KEY)),
    );

    let resolver = Resolver::new(ResolverConfig {
        max_doc_bytes: 4096,
        ..harness.config()?
    })?;
    let cases: [(String, Result<(), IdentityErrorKind>); 10] = [
        (plc('c'), Err(InvalidDocument)),
        (plc('d'), Err(TooLarge)),
        (plc('e'), Err(TooLarge)),
        (plc('g'), Err(InvalidDocument)),
        (plc('z'), Err(NotFound)),
        (redirected.clone(), Err(Network)),
        (same_origin, Ok(())),
        (
            "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc".into(),
            Err(UnsupportedMethod),
        ),
        (
            "did:web:example.com:user:alice".into(),
            Err(UnsupportedMethod),
        ),
        // Not a did:plc shape: no directory can hold it, so nothing is fetched.
        ("did:plc:tooshort".into(), Err(NotFound)),
    ];
    for (input, expected) in cases {
        let got = kind(resolver.resolve_did(&did(&input)?).await).map(|_| ());
        assert_eq!(got, expected, "{input}");
    }
    assert_eq!(
        world.hits("/moved"),
        0,
        "cross-origin redirect was followed"
    );
    assert_eq!(world.hits("/did:plc:tooshort"), 0);

    // A server that never answers: a short budget of its own, so the other cases above keep
    // a generous one on a loaded machine.
    let impatient = Resolver::new(ResolverConfig {
        request_timeout: Duration::from_millis(300),
        ..harness.config()?
    })?;
    let got = kind(impatient.resolve_did(&did(&plc('f'))?).await).map(|_| ());
    assert_eq!(got, Err(Timeout));

    harness.stop().await
}

#[tokio::test]
async fn handles_verify_both_ways_over_https_and_dns() -> Result<()> {
    let (alice, bob, carol, dave) = (plc('a'), plc('b'), plc('c'), plc('d'));
    let carol_txt = format!("did={carol}");
    let harness = Harness::start(&[("_atproto.dns.test.", carol_txt.as_str())]).await?;
    let world = &harness.world;
    world.route(
        "alice.test/.well-known/atproto-did",
        Reply::Text(format!("{alice}\n")),
    );
    // liar.test points at bob, but dave's document claims it.
    world.route(
        "liar.test/.well-known/atproto-did",
        Reply::Text(bob.clone()),
    );
    world.route(
        "junk.test/.well-known/atproto-did",
        Reply::Text("hello".into()),
    );
    world.route(
        format!("/{alice}"),
        Reply::Text(doc_json(&alice, "alice.test", K256_KEY)),
    );
    world.route(
        format!("/{carol}"),
        Reply::Text(doc_json(&carol, "dns.test", K256_KEY)),
    );
    world.route(
        format!("/{dave}"),
        Reply::Text(doc_json(&dave, "liar.test", K256_KEY)),
    );
    let resolver = harness.resolver()?;

    let cases = [
        ("alice.test", Some(alice.as_str())),
        ("liar.test", Some(bob.as_str())),
        ("dns.test", Some(carol.as_str())),
        ("junk.test", None),
        ("nobody.test", None),
    ];
    for (name, expected) in cases {
        let got = kind(resolver.resolve_handle(&handle(name)?).await);
        assert_eq!(
            got.as_ref().map(|d| d.as_ref().map(Did::as_str)),
            Ok(expected),
            "{name}"
        );
    }

    let verified = [
        (&alice, Some("alice.test")),
        (&carol, Some("dns.test")),
        (&dave, None),
    ];
    for (owner, expected) in verified {
        let doc = resolver.resolve_did(&did(owner)?).await?;
        let got = resolver.verified_handle(&doc).await;
        assert_eq!(got.as_ref().map(Handle::as_str), expected, "{owner}");
    }

    // Handle answers are cached; invalidating the DID drops its handle's answer too.
    let well_known = "alice.test/.well-known/atproto-did";
    assert_eq!(world.hits(well_known), 1);
    resolver.resolve_handle(&handle("alice.test")?).await?;
    assert_eq!(world.hits(well_known), 1);
    resolver.invalidate(&did(&alice)?).await;
    resolver.resolve_handle(&handle("alice.test")?).await?;
    assert_eq!(world.hits(well_known), 2);

    // Reserved TLDs are refused outside test mode, before any lookup.
    let strict = Resolver::new(ResolverConfig {
        allow_loopback: false,
        ..harness.config()?
    })?;
    for name in ["alice.local", "x.onion", "a.internal", "b.localhost"] {
        let got = kind(strict.resolve_handle(&handle(name)?).await);
        assert_eq!(got, Err(IdentityErrorKind::ForbiddenAddress), "{name}");
    }

    harness.stop().await
}

#[tokio::test]
async fn lookups_are_rate_limited_per_host() -> Result<()> {
    let harness = Harness::start(&[]).await?;
    let resolver = Resolver::new(ResolverConfig {
        plc_rate: RateLimit {
            per_second: 1,
            burst: 2,
        },
        ..harness.config()?
    })?;
    // Unknown DIDs: failures are not cached, so each lookup is a request.
    let results = [
        kind(resolver.resolve_did(&did(&plc('x'))?).await).map(|_| ()),
        kind(resolver.resolve_did(&did(&plc('y'))?).await).map(|_| ()),
        kind(resolver.resolve_did(&did(&plc('z'))?).await).map(|_| ()),
    ];
    use IdentityErrorKind::*;
    assert_eq!(results, [Err(NotFound), Err(NotFound), Err(RateLimited)]);
    assert_eq!(harness.world.hits(&format!("/{}", plc('z'))), 0);
    harness.stop().await
}

/// With `allow_loopback = false`, private and loopback targets are refused before any
/// connection: a listener on loopback sees only the connection the test makes afterwards.
#[tokio::test]
async fn forbidden_addresses_are_refused_without_connecting() -> Result<()> {
    let harness = Harness::start(&[]).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (accepted_tx, mut accepted) = mpsc::channel(16);
    let stop = harness.world.stop.clone();
    let watcher = tokio::spawn(async move {
        loop {
            tokio::select! {
                conn = listener.accept() => {
                    let (_stream, peer) = conn?;
                    if accepted_tx.send(peer).await.is_err() {
                        return Ok::<(), std::io::Error>(());
                    }
                }
                () = stop.cancelled() => return Ok(()),
            }
        }
    });

    let strict = |plc_url: String, base: String| -> Result<Resolver> {
        Ok(Resolver::new(ResolverConfig {
            allow_loopback: false,
            plc_url: Url::parse(&plc_url)?,
            handle_resolution_base: Some(Url::parse(&base)?),
            ..harness.config()?
        })?)
    };
    let cases = [
        // Address literals, and a name the guard resolves to loopback itself.
        (
            format!("http://127.0.0.1:{port}"),
            format!("https://127.0.0.1:{port}"),
        ),
        (
            format!("https://localhost:{port}"),
            format!("https://localhost:{port}"),
        ),
        (
            format!("https://[::1]:{port}"),
            format!("http://localhost:{port}"),
        ),
    ];
    for (plc_url, base) in cases {
        let resolver = strict(plc_url.clone(), base.clone())?;
        let got = kind(resolver.resolve_did(&did(&plc('a'))?).await).map(|_| ());
        assert_eq!(got, Err(IdentityErrorKind::ForbiddenAddress), "{plc_url}");
        let got = kind(resolver.resolve_handle(&handle("alice.test")?).await);
        assert_eq!(got, Err(IdentityErrorKind::ForbiddenAddress), "{base}");
    }
    let resolver = strict("https://plc.directory".into(), "https://localhost".into())?;
    let webs = [
        format!("did:web:127.0.0.1%3A{port}"),
        format!("did:web:localhost%3A{port}"),
        "did:web:localhost".into(),
        "did:web:10.0.0.1".into(),
        "did:web:192.168.1.1".into(),
        "did:web:169.254.169.254".into(),
        "did:web:%5B%3A%3A1%5D".into(),
        "did:web:%5Bfc00%3A%3A1%5D".into(),
    ];
    for web in webs {
        let got = kind(resolver.resolve_did(&did(&web)?).await).map(|_| ());
        assert_eq!(got, Err(IdentityErrorKind::ForbiddenAddress), "{web}");
    }

    // The first connection the listener ever accepted is this one.
    let sentinel = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let first = accepted.recv().await.context("listener stopped")?;
    assert_eq!(first, sentinel.local_addr()?);

    drop(accepted);
    harness.world.stop.cancel();
    watcher.await??;
    harness.stop().await
}

#[tokio::test]
async fn account_status_comes_from_the_current_pds() -> Result<()> {
    let harness = Harness::start(&[]).await?;
    let pds = format!("http://{}", harness.http);
    let world = &harness.world;
    let status_on = |host: &str, did: &str| {
        format!(
            "{host}/xrpc/com.atproto.sync.getRepoStatus?did={}",
            did.replace(':', "%3A")
        )
    };
    let here = harness.http.to_string();
    let status_key = |did: &str| status_on(&here, did);
    let (active, taken, gone, broken, nowhere) = (plc('a'), plc('b'), plc('c'), plc('d'), plc('e'));
    for owner in [&active, &taken, &gone, &broken] {
        world.route(
            format!("/{owner}"),
            Reply::Text(doc_json_on(owner, "x.test", K256_KEY, &pds)),
        );
    }
    // This one's PDS is a closed loopback port: unreachable.
    world.route(
        format!("/{nowhere}"),
        Reply::Text(doc_json_on(
            &nowhere,
            "x.test",
            K256_KEY,
            "http://127.0.0.1:1",
        )),
    );
    let body = |did: &str, rest: &str| format!(r#"{{"did":"{did}",{rest}}}"#);
    world.route(
        status_key(&active),
        Reply::Text(body(&active, r#""active":true,"rev":"3lbbbbbbbbb22""#)),
    );
    world.route(
        status_key(&taken),
        Reply::Text(body(&taken, r#""active":false,"status":"takendown""#)),
    );
    world.route(
        status_key(&gone),
        Reply::Status(
            StatusCode::BAD_REQUEST,
            r#"{"error":"RepoNotFound","message":"no repo"}"#.into(),
        ),
    );
    world.route(
        status_key(&broken),
        Reply::Status(StatusCode::INTERNAL_SERVER_ERROR, "{}".into()),
    );
    let resolver = harness.resolver()?;

    use IdentityErrorKind::*;
    let cases = [
        (
            &active,
            Ok(RepoStatus::Active {
                rev: Some("3lbbbbbbbbb22".into()),
            }),
        ),
        (
            &taken,
            Ok(RepoStatus::Inactive {
                status: "takendown".into(),
            }),
        ),
        (&gone, Ok(RepoStatus::NotFound)),
        (&broken, Err(Network)),
        (&nowhere, Err(Network)),
    ];
    for (owner, expected) in cases {
        let got = kind(resolver.repo_status(&did(owner)?).await);
        assert_eq!(got, expected, "{owner}");
    }
    assert_eq!(world.hits(&status_key(&active)), 1);

    // A migrated account: the cached document still names the old PDS, which now reports the
    // account deactivated; the check re-resolves and asks the new one.
    let migrant = plc('m');
    let old_host = format!("localhost:{}", harness.http.port());
    world.route(
        format!("/{migrant}"),
        Reply::Text(doc_json_on(
            &migrant,
            "m.test",
            K256_KEY,
            &format!("http://{old_host}"),
        )),
    );
    world.route(
        status_on(&old_host, &migrant),
        Reply::Text(body(&migrant, r#""active":false,"status":"deactivated""#)),
    );
    world.route(
        status_key(&migrant),
        Reply::Text(body(&migrant, r#""active":true"#)),
    );
    resolver.resolve_did(&did(&migrant)?).await?;
    world.route(
        format!("/{migrant}"),
        Reply::Text(doc_json_on(&migrant, "m.test", K256_KEY, &pds)),
    );
    let got = kind(resolver.repo_status(&did(&migrant)?).await);
    assert_eq!(got, Ok(RepoStatus::Active { rev: None }));
    assert_eq!(world.hits(&status_on(&old_host, &migrant)), 0);

    harness.stop().await
}
