//! The real server on 127.0.0.1: AdmissionReviews over HTTP/2 with TLS, certificate rotation
//! under load, and what the TLS port does with clients it must refuse.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use raygate_webhook::{CertificatePaths, Server, ServerConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A CA and the serving certificates it signs, all for 127.0.0.1.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        Self {
            ca: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn leaf(&self) -> Leaf {
        self.leaf_with(|_| {})
    }

    fn leaf_with(&self, adjust: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        adjust(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn client(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca.der().clone())
            .expect("CA into the root store");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every connection does a full handshake, so each one shows the certificate in use
        // (a resumed session would report the certificate of the session it resumes).
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector::from(Arc::new(config))
    }

    fn h2_client(&self) -> TlsConnector {
        self.client(&[b"h2"], rustls::DEFAULT_VERSIONS)
    }
}

/// Writes a file next to its destination and renames it over, as an atomic update would.
fn replace_file(path: &Path, contents: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, contents).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

struct TestServer {
    addr: SocketAddr,
    admin: SocketAddr,
    paths: CertificatePaths,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), raygate_webhook::Error>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(leaf: &Leaf) -> Self {
        Self::start_with(leaf, |_| {}).await
    }

    async fn start_with(leaf: &Leaf, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = CertificatePaths {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        std::fs::write(&paths.cert, &leaf.cert_pem).expect("cert");
        std::fs::write(&paths.key, &leaf.key_pem).expect("key");
        Self::start_in(dir, paths, adjust).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        paths: CertificatePaths,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = ServerConfig::new(paths.clone());
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.certificate_poll_interval = Duration::from_millis(100);
        config.shutdown_grace = Duration::from_secs(5);
        adjust(&mut config);
        let server = Server::bind(config).await.expect("server binds");
        let addr = server.local_addr().expect("addr");
        let admin = server.admin_addr().expect("admin addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            paths,
            stop: Some(stop),
            handle,
            _dir: dir,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.handle)
            .await
            .expect("the server stops within its grace period")
            .expect("the server task does not panic");
        result.expect("the server stops cleanly");
    }
}

async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    connector.connect(name, tcp).await
}

fn peer_leaf(tls: &TlsStream<TcpStream>) -> Option<CertificateDer<'static>> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.clone().into_owned())
}

fn review_body() -> Bytes {
    let cluster = common::ray_cluster();
    Bytes::from(serde_json::to_vec(&common::review("CREATE", Some(&cluster), None)).expect("JSON"))
}

fn post_request(path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(format!("https://127.0.0.1{path}"))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("request")
}

/// One AdmissionReview over a fresh HTTP/2 connection; returns the review and the leaf
/// certificate the server presented.
async fn review_over_h2(
    connector: &TlsConnector,
    addr: SocketAddr,
    body: Bytes,
) -> Result<(Value, CertificateDer<'static>), String> {
    let tls = tls_connect(connector, addr)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"h2".as_slice()) {
        return Err(format!("ALPN negotiated {alpn:?}, not h2"));
    }
    let leaf = peer_leaf(&tls).ok_or("no peer certificate")?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(post_request("/mutate", body))
        .await
        .map_err(|e| format!("request: {e}"))?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let review: Value = serde_json::from_slice(&bytes).map_err(|e| format!("JSON: {e}"))?;
    if review["response"]["allowed"] != Value::Bool(true) {
        return Err(format!("not allowed: {review}"));
    }
    Ok((review, leaf))
}

/// GET on the admin port over plain HTTP/1.1.
async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(admin).await.expect("admin connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("admin handshake");
    tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("admin response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("admin body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads until the peer closes (or `limit` passes); returns what arrived and whether it closed.
async fn read_until_closed<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buffer = [0u8; 4096];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (received, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_reviews_over_h2_and_rotates_certificates_under_load() -> TestResult {
    let pki = Pki::new();
    let first = pki.leaf();
    let second = pki.leaf();
    let server = TestServer::start(&first).await;
    let connector = pki.h2_client();
    let body = review_body();

    let (status, text) = admin_get(server.admin, "/readyz").await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));

    // A long-lived HTTP/2 connection keeps working across the rotation.
    let tls = tls_connect(&connector, server.addr).await?;
    let (mut persistent, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);

    const WORKERS: usize = 4;
    const PER_WORKER: usize = 50;
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let connector = connector.clone();
        let body = body.clone();
        let done = done.clone();
        let addr = server.addr;
        workers.push(tokio::spawn(async move {
            let mut leaves = Vec::new();
            for _ in 0..PER_WORKER {
                let (_, leaf) = review_over_h2(&connector, addr, body.clone()).await?;
                leaves.push(leaf);
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, String>(leaves)
        }));
    }

    // A quarter of the way in, rotate: new key first, then the certificate, each renamed over.
    while done.load(Ordering::SeqCst) < WORKERS * PER_WORKER / 4 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    replace_file(&server.paths.key, &second.key_pem);
    let response = persistent
        .send_request(post_request("/validate", body.clone()))
        .await?;
    assert_eq!(
        response.status(),
        200,
        "the persistent connection mid-rotation"
    );
    replace_file(&server.paths.cert, &second.cert_pem);

    let mut served = Vec::new();
    for worker in workers {
        served.extend(
            worker
                .await?
                .map_err(|e| format!("a request failed during rotation: {e}"))?,
        );
    }
    assert_eq!(
        served.len(),
        WORKERS * PER_WORKER,
        "every request succeeded"
    );
    assert!(
        served
            .iter()
            .all(|leaf| *leaf == first.der || *leaf == second.der)
    );
    assert_eq!(served.first(), Some(&first.der));

    // The new certificate is served from now on.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, leaf) = review_over_h2(&connector, server.addr, body.clone()).await?;
        if leaf == second.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = persistent
        .send_request(post_request("/mutate", body.clone()))
        .await?;
    assert_eq!(
        response.status(),
        200,
        "the persistent connection after rotation"
    );

    let (_, metrics) = admin_get(server.admin, "/metrics").await;
    assert!(
        metrics.contains("raygate_tls_reloads_total{result=\"success\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("raygate_admission_requests_total{kind=\"RayCluster\",operation=\"CREATE\",verb=\"mutate\",result=\"allowed\"}"), "{metrics}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_bad_new_certificate_keeps_the_old_one_serving() -> TestResult {
    let pki = Pki::new();
    let first = pki.leaf();
    let other = pki.leaf();
    let server = TestServer::start(&first).await;
    let connector = pki.h2_client();

    replace_file(
        &server.paths.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, leaf) = review_over_h2(&connector, server.addr, review_body()).await?;
    assert_eq!(leaf, first.der, "garbage is refused");

    // A certificate whose key isn't the one on disk is refused too.
    replace_file(&server.paths.cert, &other.cert_pem);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, leaf) = review_over_h2(&connector, server.addr, review_body()).await?;
    assert_eq!(leaf, first.der, "a mismatched pair is refused");

    let (_, metrics) = admin_get(server.admin, "/metrics").await;
    assert!(
        metrics.contains("raygate_tls_reloads_total{result=\"failure\"} 2"),
        "{metrics}"
    );

    // Once the key catches up, the pair is served.
    replace_file(&server.paths.key, &other.key_pem);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, leaf) = review_over_h2(&connector, server.addr, review_body()).await?;
    assert_eq!(leaf, other.der);
    server.shutdown().await;
    Ok(())
}

/// The expiry an admin alerts on is the served certificate's own notAfter, and follows a
/// renewal on disk.
#[tokio::test]
async fn the_expiry_metric_is_the_served_certificates_not_after() -> TestResult {
    let pki = Pki::new();
    let until = |year| {
        move |params: &mut CertificateParams| {
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
    };
    let first = pki.leaf_with(until(2030));
    let server = TestServer::start(&first).await;
    let expiry = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("raygate_certificate_expiry_timestamp_seconds "))
            .map(str::to_owned)
    };
    let (_, metrics) = admin_get(server.admin, "/metrics").await;
    // 2030-01-01T00:00:00Z.
    assert_eq!(expiry(&metrics).as_deref(), Some("1893456000"), "{metrics}");

    let renewed = pki.leaf_with(until(2031));
    replace_file(&server.paths.key, &renewed.key_pem);
    replace_file(&server.paths.cert, &renewed.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = admin_get(server.admin, "/metrics").await;
        // 2031-01-01T00:00:00Z.
        if expiry(&metrics).as_deref() == Some("1924992000") {
            break;
        }
        assert!(Instant::now() < deadline, "expiry not updated: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, leaf) = review_over_h2(&pki.h2_client(), server.addr, review_body()).await?;
    assert_eq!(leaf, renewed.der);
    server.shutdown().await;
    Ok(())
}

/// A Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>`, and an
/// update writes a new timestamped directory and renames a new `..data` symlink over the old.
#[tokio::test]
async fn follows_a_secret_volume_symlink_swap() -> TestResult {
    use std::os::unix::fs::symlink;
    let pki = Pki::new();
    let first = pki.leaf();
    let second = pki.leaf();
    let dir = tempfile::tempdir()?;
    let write_generation = |name: &str, leaf: &Leaf| -> std::io::Result<PathBuf> {
        let generation = dir.path().join(name);
        std::fs::create_dir(&generation)?;
        std::fs::write(generation.join("tls.crt"), &leaf.cert_pem)?;
        std::fs::write(generation.join("tls.key"), &leaf.key_pem)?;
        Ok(generation)
    };
    write_generation("..2026_01_01_00_00_00.1", &first)?;
    symlink("..2026_01_01_00_00_00.1", dir.path().join("..data"))?;
    symlink("..data/tls.crt", dir.path().join("tls.crt"))?;
    symlink("..data/tls.key", dir.path().join("tls.key"))?;
    let paths = CertificatePaths {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let dir_path = dir.path().to_owned();
    let server = TestServer::start_in(dir, paths, |_| {}).await;
    let connector = pki.h2_client();
    let (_, leaf) = review_over_h2(&connector, server.addr, review_body()).await?;
    assert_eq!(leaf, first.der);

    let generation = dir_path.join("..2026_01_02_00_00_00.2");
    std::fs::create_dir(&generation)?;
    std::fs::write(generation.join("tls.crt"), &second.cert_pem)?;
    std::fs::write(generation.join("tls.key"), &second.key_pem)?;
    symlink("..2026_01_02_00_00_00.2", dir_path.join("..data_tmp"))?;
    std::fs::rename(dir_path.join("..data_tmp"), dir_path.join("..data"))?;
    std::fs::remove_dir_all(dir_path.join("..2026_01_01_00_00_00.1"))?;

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, leaf) = review_over_h2(&connector, server.addr, review_body()).await?;
        if leaf == second.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the swapped certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn http1_over_tls_and_tls12_work_too() -> TestResult {
    let pki = Pki::new();
    let leaf = pki.leaf();
    let server = TestServer::start(&leaf).await;
    let connector = pki.client(&[b"http/1.1"], &[&rustls::version::TLS12]);
    let tls = tls_connect(&connector, server.addr).await?;
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(b"http/1.1".as_slice())
    );
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let mut request = post_request("/validate", review_body());
    request.headers_mut().insert("host", "127.0.0.1".parse()?);
    let response = sender.send_request(request).await?;
    assert_eq!(response.status(), 200);
    server.shutdown().await;
    Ok(())
}

/// An HTTP/1.0 client (no Host header, no keep-alive) gets its review answered in HTTP/1.x and
/// the connection closed after it, as HTTP/1.0 expects.
#[tokio::test]
async fn an_http10_client_gets_its_answer_and_the_connection_closes() -> TestResult {
    let pki = Pki::new();
    let leaf = pki.leaf();
    let server = TestServer::start(&leaf).await;
    let connector = pki.client(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut tls = tls_connect(&connector, server.addr).await?;
    let body = review_body();
    let head = format!(
        "POST /validate HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(&body).await?;
    tls.flush().await?;
    let (received, closed) = read_until_closed(&mut tls, Duration::from_secs(5)).await;
    assert!(closed, "the connection closes after the answer");
    let text = String::from_utf8_lossy(&received);
    let (status, rest) = text.split_once("\r\n").unwrap_or_default();
    assert!(
        status.starts_with("HTTP/1.") && status.ends_with(" 200 OK"),
        "{text}"
    );
    let (_, json) = rest.split_once("\r\n\r\n").unwrap_or_default();
    let review: Value = serde_json::from_str(json)?;
    let request: Value = serde_json::from_slice(&body)?;
    assert_eq!(review["response"]["uid"], request["request"]["uid"]);
    assert_eq!(review["response"]["allowed"], true, "{review}");
    server.shutdown().await;
    Ok(())
}

/// What an admin sees when the API server's caBundle does not match the serving certificate:
/// the refused handshake is counted apart from the connections that work.
#[tokio::test]
async fn connections_are_counted_by_protocol_and_failed_handshakes_apart() -> TestResult {
    let pki = Pki::new();
    let leaf = pki.leaf();
    let server = TestServer::start(&leaf).await;
    review_over_h2(&pki.h2_client(), server.addr, review_body()).await?;
    let http1_client = pki.client(&[b"http/1.1"], &[&rustls::version::TLS13]);
    drop(tls_connect(&http1_client, server.addr).await?);
    let other_ca = Pki::new();
    let refused = tls_connect(&other_ca.h2_client(), server.addr).await;
    assert!(
        refused.is_err(),
        "a client trusting another CA must refuse the server"
    );

    let wanted = [
        "raygate_tls_connections_total{result=\"h2\"} 1",
        "raygate_tls_connections_total{result=\"http/1.1\"} 1",
        "raygate_tls_connections_total{result=\"handshake_failed\"} 1",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, text) = admin_get(server.admin, "/metrics").await;
        assert_eq!(status, 200);
        if wanted.iter().all(|line| text.contains(line)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {wanted:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
    Ok(())
}

/// A TLS 1.0 ClientHello (no `supported_versions` extension), as an old client sends it.
fn tls10_client_hello() -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&[0x03, 0x01]); // client_version TLS 1.0
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0xc0, 0x13]); // AES128-SHA, ECDHE-RSA-AES128-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn a_tls10_client_is_refused() -> TestResult {
    let pki = Pki::new();
    let leaf = pki.leaf();
    let server = TestServer::start(&leaf).await;
    let mut tcp = TcpStream::connect(server.addr).await?;
    tcp.write_all(&tls10_client_hello()).await?;
    let (received, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "the server hangs up");
    // At most an alert (content type 21), never a ServerHello (handshake record, type 22).
    assert!(received.first().is_none_or(|&t| t == 0x15), "{received:?}");
    if received.len() >= 7 {
        // protocol_version (70) or handshake_failure (40): no version or suite in common.
        assert!(
            [40, 70].contains(&received[6]),
            "a fatal alert: {received:?}"
        );
    }
    // The server is unharmed.
    review_over_h2(&pki.h2_client(), server.addr, review_body()).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn plain_http_on_the_tls_port_fails_cleanly() -> TestResult {
    let pki = Pki::new();
    let leaf = pki.leaf();
    let server = TestServer::start(&leaf).await;
    let mut tcp = TcpStream::connect(server.addr).await?;
    tcp.write_all(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").await?;
    let (received, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "the server hangs up");
    assert!(
        !received.starts_with(b"HTTP/"),
        "no HTTP answer in clear text: {received:?}"
    );
    review_over_h2(&pki.h2_client(), server.addr, review_body()).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn slow_clients_are_disconnected_by_the_header_timeout() -> TestResult {
    let pki = Pki::new();
    let leaf = pki.leaf();
    let timeout = Duration::from_secs(1);
    let server = TestServer::start_with(&leaf, |config| config.header_read_timeout = timeout).await;

    // Partial headers, then silence.
    let connector = pki.client(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut tls = tls_connect(&connector, server.addr).await?;
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        .await?;
    tls.flush().await?;
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut tls, Duration::from_secs(5)).await;
    assert!(closed, "a stalled request is cut off");
    assert!(
        started.elapsed() >= timeout / 2,
        "not before the timeout: {:?}",
        started.elapsed()
    );

    // A TCP connection that never starts the TLS handshake.
    let mut tcp = TcpStream::connect(server.addr).await?;
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "a silent connection is cut off");

    // A TLS connection that never sends a request.
    let mut tls = tls_connect(&connector, server.addr).await?;
    let (_, closed) = read_until_closed(&mut tls, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection is cut off");

    // Headers on time, then a body that never arrives.
    let mut tls = tls_connect(&connector, server.addr).await?;
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{").await?;
    let (received, closed) = read_until_closed(&mut tls, Duration::from_secs(5)).await;
    assert!(closed, "a stalled body is cut off");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_accepting() -> TestResult {
    let pki = Pki::new();
    let leaf = pki.leaf();
    let mut server = TestServer::start(&leaf).await;
    let connector = pki.client(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let body = review_body();
    let (head, tail) = body.split_at(body.len() / 2);

    // A request half sent when the shutdown comes...
    let mut tls = tls_connect(&connector, server.addr).await?;
    let headers = format!(
        "POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(headers.as_bytes()).await?;
    tls.write_all(head).await?;
    tls.flush().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.handle.is_finished(),
        "the server waits for the in-flight request"
    );
    // ...still gets its answer.
    tls.write_all(tail).await?;
    let (received, _) = read_until_closed(&mut tls, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"allowed\":true"), "{text}");

    tokio::time::timeout(Duration::from_secs(10), &mut server.handle).await???;
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_certificate_stops_startup_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::new(CertificatePaths {
        cert: dir.path().join("absent.crt"),
        key: dir.path().join("absent.key"),
    });
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let error = Server::bind(config)
        .await
        .expect_err("no certificate, no server");
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    assert!(
        chain.starts_with("loading the serving certificate: cannot read ")
            && chain.contains("absent.crt"),
        "{chain}"
    );
}
