//! Clients that hold the API's connections open: their connections are closed once the header
//! timeout passes, and everyone else is served meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, request};

#[test]
fn slowloris_clients_are_cut_off_and_do_not_stop_others_being_served() {
    let daemon = Daemon::start(&["--header-read-timeout", "2"]);
    let addr = daemon.base.trim_start_matches("http://").to_string();
    // Fifty clients that send a request's headers a byte at a time, forever.
    let slow: Vec<_> = (0..50)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let started = Instant::now();
                let header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                for byte in header.iter().chain(std::iter::repeat(&b'a')) {
                    if started.elapsed() > Duration::from_secs(20) {
                        return None;
                    }
                    if stream.write_all(&[*byte]).is_err() {
                        return Some(started.elapsed());
                    }
                    let mut buf = [0u8; 512];
                    match stream.read(&mut buf) {
                        // Closed by the server (possibly after a 408).
                        Ok(0) | Ok(_) => return Some(started.elapsed()),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return Some(started.elapsed()),
                    }
                }
                unreachable!()
            })
        })
        .collect();
    // Everyone else is served, promptly, while they trickle.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        let started = Instant::now();
        let answer = request("GET", &daemon.url("/healthz"), &[], None);
        assert_eq!(answer.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for client in slow {
        let closed_after = client
            .join()
            .unwrap()
            .expect("a slow client was never cut off");
        assert!(
            closed_after < Duration::from_secs(8),
            "cut off after {closed_after:?}"
        );
    }
    assert_eq!(
        request("GET", &daemon.url("/healthz"), &[], None).status,
        200
    );
}
