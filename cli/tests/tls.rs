//! `rediss://` (the default `tls` feature): a migration to a private TLS
//! redis-server whose CA the URL names (`ca=`), and a clear refusal without
//! it. The server and its certificates are made here, as in
//! `store-redis/tests/tls.rs`.

#![cfg(feature = "tls")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

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

#[test]
fn migrate_to_rediss_with_a_private_ca() {
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
    let base = format!("rediss://127.0.0.1:{port}/");
    let ca = d.join("ca.crt");
    let tmp = tempfile::tempdir().unwrap();
    let expected = seed_file(&tmp.path().join("src"), 300, 3, 0);
    let target = format!("{}&ca={}", redis_store(&base), ca.display());
    let mut migrated = None;
    for _ in 0..200 {
        let r = run(&[
            "--json",
            "migrate",
            "--from",
            &file_url(&tmp.path().join("src")),
            "--to",
            &target,
        ]);
        if r.code == 0 {
            migrated = Some(r.json());
            break;
        }
        assert_eq!(r.code, 3, "only a server still starting may fail: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = migrated.expect("migrate over TLS with the test CA");
    assert_eq!(v["copied"], 300, "{v}");
    runtime().block_on(async {
        let (server_url, rest) = target.split_once("?prefix=").unwrap();
        let prefix = rest.split('&').next().unwrap();
        let store = session_store_redis::RedisStore::builder(server_url)
            .prefix(prefix)
            .tls_root_ca(std::fs::read(&ca).unwrap())
            .build()
            .await
            .unwrap();
        assert_holds(&store, &expected).await;
    });
    // Without the CA the server's certificate is not trusted: the store
    // cannot be opened, and the message says why.
    let r = run(&["count", &base]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&base), "{r:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}
