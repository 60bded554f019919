//! `rediss://` against a private TLS redis-server (feature `tls`), with a
//! CA made for the test: the store trusts it through `tls_root_ca`, and
//! refuses the server without it.

#![cfg(feature = "tls")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use session_store_core::{Clock, Error, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_redis::RedisStore;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make the test's certificates (apt-get install openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca() {
    let Some(binary) = common::env_or_skip("SESSION_STORE_REDIS_SERVER") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        d,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=session-store test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        d,
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(&binary)
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.crt",
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ])
        .arg("--dir")
        .arg(d)
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let url = format!("rediss://127.0.0.1:{port}/");
    let ca = std::fs::read(d.join("ca.crt")).unwrap();
    let mut store = None;
    for _ in 0..200 {
        match RedisStore::builder(url.clone())
            .prefix(common::random_prefix())
            .tls_root_ca(ca.clone())
            .build()
            .await
        {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let store = store.expect("connect over TLS with the test CA");
    let now = SystemClock.now();
    let mut data = SessionData::new();
    data.insert("over", &"tls").unwrap();
    let r = Record::with_deadline(SessionId::random(), data, now, now + Duration::from_secs(60));
    store.create(&r).await.unwrap();
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, r.data);
    assert_eq!(store.count().await.unwrap(), 1);
    // Without the CA, the server's certificate is not trusted.
    let err = RedisStore::builder(url)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();
}
