use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::*;

#[tokio::test]
async fn past_the_cap_new_connections_are_closed_at_once() {
    let mut door = Door::bind("test", "127.0.0.1:0".parse().unwrap(), None, 2)
        .await
        .unwrap();
    let addr = door.local_addr().unwrap();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let v = door.accept().await;
            let open = door.open_connections();
            let _ = held_tx.send((v, open));
        }
    });
    let mut a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (va, open_a) = held_rx.recv().await.unwrap();
    let (_vb, open_b) = held_rx.recv().await.unwrap();
    assert_eq!((open_a, open_b), (1, 2));
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("the third connection is closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // Closing one frees its slot.
    drop(va);
    let mut d = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (_vd, _) = held_rx.recv().await.unwrap();
    // The first client was closed by the server; the new one is held.
    let n = tokio::time::timeout(Duration::from_secs(10), a.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), d.read(&mut buf))
            .await
            .is_err(),
        "held connections stay open"
    );
}

#[tokio::test]
async fn past_the_per_address_cap_new_connections_from_it_are_closed_at_once() {
    let door = Door::bind("test", "127.0.0.1:0".parse().unwrap(), None, 100)
        .await
        .unwrap()
        .per_address(2);
    let mut door = door;
    let addr = door.local_addr().unwrap();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let v = door.accept().await;
            let _ = held_tx.send(v);
        }
    });
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let va = held_rx.recv().await.unwrap();
    let _vb = held_rx.recv().await.unwrap();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("the third connection from the address is closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(held_rx.try_recv().is_err(), "it was never handed out");
    // A connection that ends frees its address's slot.
    drop(va);
    let mut d = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _vd = held_rx.recv().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), d.read(&mut buf))
            .await
            .is_err(),
        "held connections stay open"
    );
}
