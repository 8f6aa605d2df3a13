//! The servers: admission over TLS (rustls, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`) on one
//! port, health and metrics over plain HTTP on another.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::Error;
use crate::certificate::{CertificatePaths, CertificateResolver, Reload};
use crate::metrics::Metrics;
use crate::policy_state::PolicyState;
use crate::routes::{
    AdminState, AdmissionState, DEFAULT_BODY_LIMIT, admin_router, admission_router,
};

/// Everything the servers need to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The admission (TLS) address.
    pub listen: SocketAddr,
    /// The admin (plain HTTP) address: `/healthz`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    pub certificate: CertificatePaths,
    pub body_limit: usize,
    /// A client must finish the TLS handshake, and then each HTTP/1.1 request's headers, and
    /// send each body, within this time (a guard against slowloris clients).
    pub header_read_timeout: Duration,
    /// How often the certificate files are checked for changes.
    pub certificate_poll_interval: Duration,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The RayPolicies in force (files and, when watched, the cluster's).
    pub policies: Arc<PolicyState>,
}

impl ServerConfig {
    pub fn new(certificate: CertificatePaths) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9443)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            certificate,
            body_limit: DEFAULT_BODY_LIMIT,
            header_read_timeout: Duration::from_secs(10),
            certificate_poll_interval: Duration::from_secs(1),
            // Kubernetes' default terminationGracePeriodSeconds is 30.
            shutdown_grace: Duration::from_secs(25),
            policies: Arc::new(PolicyState::default()),
        }
    }
}

/// The rustls configuration of the admission port.
pub fn tls_config(
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertificateResolver>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // kube-apiserver speaks HTTP/2 to webhooks; curl and friends may still use HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Both listeners bound, the certificate loaded: ready to [`run`](Self::run).
pub struct Server {
    config: ServerConfig,
    tls_listener: TcpListener,
    admin_listener: TcpListener,
    acceptor: TlsAcceptor,
    resolver: Arc<CertificateResolver>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl Server {
    /// Loads the certificate and binds both ports. Fails fast on a missing or bad certificate.
    pub async fn bind(config: ServerConfig) -> Result<Self, Error> {
        let metrics = Arc::new(Metrics::new());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(CertificateResolver::load(
            config.certificate.clone(),
            provider.clone(),
            metrics.clone(),
        )?);
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(provider, resolver.clone())?));
        let tls_listener = bind(config.listen).await?;
        let admin_listener = bind(config.admin_listen).await?;
        Ok(Self {
            config,
            tls_listener,
            admin_listener,
            acceptor,
            resolver,
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The bound admission address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.tls_listener.local_addr().map_err(Error::LocalAddr)
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> Result<SocketAddr, Error> {
        self.admin_listener.local_addr().map_err(Error::LocalAddr)
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn resolver(&self) -> Arc<CertificateResolver> {
        self.resolver.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to the grace period) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let Server {
            config,
            tls_listener,
            admin_listener,
            acceptor,
            resolver,
            metrics,
            ready,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);

        let admin = tokio::spawn({
            let app = admin_router(AdminState {
                metrics: metrics.clone(),
                ready: ready.clone(),
                policies: config.policies.clone(),
            });
            let mut stop = stop_rx.clone();
            async move {
                axum::serve(admin_listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    })
                    .await
            }
        });
        let reloader = tokio::spawn(poll_certificate(
            resolver,
            config.certificate_poll_interval,
            stop_rx.clone(),
        ));

        let app = admission_router(AdmissionState {
            metrics: metrics.clone(),
            body_limit: config.body_limit,
            body_read_timeout: config.header_read_timeout,
            policies: config.policies.clone(),
        });
        let graceful = GracefulShutdown::new();
        tracing::info!(
            listen = %config.listen,
            admin = %config.admin_listen,
            "admission webhook serving"
        );
        ready.store(true, Ordering::Release);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = tls_listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        tokio::spawn(serve_connection(
                            tcp,
                            peer,
                            acceptor.clone(),
                            metrics.clone(),
                            app.clone(),
                            config.header_read_timeout,
                            graceful.watcher(),
                        ));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }

        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        ready.store(false, Ordering::Release);
        drop(tls_listener);
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(config.shutdown_grace) => {
                tracing::warn!(grace = ?config.shutdown_grace, "connections still open after the grace period; closing them");
            }
        }
        let _ = stop_tx.send(true);
        let _ = reloader.await;
        match admin.await {
            Ok(result) => result.map_err(Error::AdminServer),
            Err(join) => Err(Error::AdminServer(std::io::Error::other(join))),
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls_listener", &self.tls_listener)
            .field("admin_listener", &self.admin_listener)
            .finish_non_exhaustive()
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

async fn poll_certificate(
    resolver: Arc<CertificateResolver>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticker.tick() => {}
        }
        let resolver = resolver.clone();
        // File I/O belongs on a blocking thread; the outcome is logged by the resolver.
        match tokio::task::spawn_blocking(move || resolver.reload_if_changed()).await {
            Ok(Reload::Unchanged | Reload::Reloaded | Reload::Rejected(_)) => {}
            Err(error) => tracing::error!(%error, "certificate reload task failed"),
        }
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    metrics: Arc<Metrics>,
    app: Router,
    timeout: Duration,
    watcher: Watcher,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            metrics.observe_connection("handshake_failed");
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            metrics.observe_connection("handshake_timeout");
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    // HTTP/2 over TLS is negotiated by ALPN (RFC 9113 §3.2), so the protocol is known here;
    // not sniffing the connection preface keeps a silent client under the header timeout.
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    metrics.observe_connection(if h2 { "h2" } else { "http/1.1" });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(timeout);
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let connection = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
