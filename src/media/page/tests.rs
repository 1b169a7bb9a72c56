use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::Request;

use super::*;
use crate::media::testutil::*;

struct Env {
    _tmp: tempfile::TempDir,
    store: Arc<MediaStore>,
    signer: LinkSigner,
}

fn env() -> Env {
    let (tmp, store) = store_with(|_| {});
    Env {
        _tmp: tmp,
        store,
        signer: LinkSigner::new(&[3u8; 32]),
    }
}

impl Env {
    fn put(&self, ct: &str, bytes: Bytes) -> String {
        let info = self.store.put("acme", ct, bytes).unwrap();
        self.signer.path(77, &info.id.to_hex())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (Response<Full<Bytes>>, Bytes) {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(()).unwrap();
        let resp = serve(req, &self.store, &self.signer).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, Full::new(bytes.clone())), bytes)
    }
}

fn header<'a>(r: &'a Response<Full<Bytes>>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn page_for_an_image() {
    let e = env();
    let path = e.put("image/png", small_png());
    let (r, body) = e.call(Method::GET, &path, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "private, max-age=86400");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    assert!(header(&r, "content-security-policy").contains("default-src 'none'"));
    assert_eq!(header(&r, "content-length"), body.len().to_string());
    let html = std::str::from_utf8(&body).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(
        html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert!(html.contains("<title>"));
    let token = path.rsplit('/').next().unwrap();
    assert!(
        html.contains(&format!("<img src=\"{token}/raw\" alt=")),
        "{html}"
    );
    assert!(html.trim_end().ends_with("</html>"));
    assert!(!html.contains("<video"));
}

#[tokio::test]
async fn page_for_a_video_and_for_text() {
    let e = env();
    let mut mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0isommp42".to_vec();
    mp4.extend_from_slice(&[0, 0, 0, 8, b'm', b'o', b'o', b'v']);
    let path = e.put("video/mp4", Bytes::from(mp4.clone()));
    let (r, body) = e.call(Method::GET, &path, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = std::str::from_utf8(&body).unwrap();
    assert!(html.contains("<video controls playsinline"), "{html}");
    assert!(!html.contains("<img"));
    let (r, raw) = e.call(Method::GET, &format!("{path}/raw"), &[]).await;
    assert_eq!(header(&r, "content-type"), "video/mp4");
    assert_eq!(raw, mp4);

    let path = e.put(
        "text/plain",
        Bytes::from("<script>alert('x')</script> & \"q\""),
    );
    let (_, body) = e.call(Method::GET, &path, &[]).await;
    let html = std::str::from_utf8(&body).unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"));
}

#[tokio::test]
async fn raw_bytes_with_caching_headers() {
    let e = env();
    let png = small_png();
    let path = e.put("image/png", png.clone());
    let media_id = MediaId::of(&png).to_hex();
    let (r, body) = e.call(Method::GET, &format!("{path}/raw"), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body, png);
    assert_eq!(header(&r, "content-type"), "image/png");
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&r, "etag"), format!("\"{media_id}\""));
    assert_eq!(header(&r, "content-length"), png.len().to_string());
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "accept-ranges"), "bytes");

    // Conditional requests.
    let etag = format!("\"{media_id}\"");
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let (r, body) = e
            .call(
                Method::GET,
                &format!("{path}/raw"),
                &[("if-none-match", &inm)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{inm}");
        assert!(body.is_empty());
        assert_eq!(header(&r, "etag"), etag);
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
    }
    let (r, body) = e
        .call(
            Method::GET,
            &format!("{path}/raw"),
            &[("if-none-match", "\"nope\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body, png);
}

#[tokio::test]
async fn byte_ranges() {
    let e = env();
    let png = small_png();
    let n = png.len();
    let raw = format!("{}/raw", e.put("image/png", png.clone()));
    let (r, body) = e.call(Method::GET, &raw, &[("range", "bytes=0-1")]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, png.slice(0..2));
    assert_eq!(header(&r, "content-range"), format!("bytes 0-1/{n}"));
    let (r, body) = e.call(Method::GET, &raw, &[("range", "bytes=10-")]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, png.slice(10..));
    let (_, body) = e.call(Method::GET, &raw, &[("range", "bytes=-5")]).await;
    assert_eq!(body, png.slice(n - 5..));
    let (_, body) = e
        .call(
            Method::GET,
            &raw,
            &[("range", "bytes=5-99999999999999999999999")],
        )
        .await;
    assert_eq!(body, png.slice(5..));
    let (r, _) = e
        .call(Method::GET, &raw, &[("range", &format!("bytes={n}-"))])
        .await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "content-range"), format!("bytes */{n}"));
    // Several ranges, or nonsense: the whole content.
    for v in ["bytes=0-1,3-4", "bytes=5-2", "lines=1-2", "bytes=x-y"] {
        let (r, body) = e.call(Method::GET, &raw, &[("range", v)]).await;
        assert_eq!(r.status(), StatusCode::OK, "{v}");
        assert_eq!(body, png);
    }
    // If-Range with another validator: the whole content.
    let (r, _) = e
        .call(
            Method::GET,
            &raw,
            &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn head_has_the_headers_without_the_body() {
    let e = env();
    let png = small_png();
    let path = e.put("image/png", png.clone());
    let (r, body) = e.call(Method::HEAD, &format!("{path}/raw"), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&r, "content-length"), png.len().to_string());
    assert_eq!(header(&r, "content-type"), "image/png");
    let (r, body) = e.call(Method::HEAD, &path, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
}

#[tokio::test]
async fn bad_links_are_404_without_distinction() {
    let e = env();
    let path = e.put("image/png", small_png());
    // A valid signature for media nobody stored.
    let unknown = e.signer.path(77, &MediaId::of(b"not stored").to_hex());
    let (prefix, token) = path.rsplit_once('/').unwrap();
    let flipped = format!(
        "{prefix}/{}{}",
        if token.starts_with('a') { "b" } else { "a" },
        &token[1..]
    );
    let other_signer = LinkSigner::new(&[4u8; 32]).path(77, &MediaId::of(&small_png()).to_hex());
    let mut answers = Vec::new();
    for p in [
        unknown.clone(),
        format!("{unknown}/raw"),
        flipped.clone(),
        format!("{flipped}/raw"),
        other_signer,
        format!("{path}/raw/raw"),
        format!("{path}/"),
        "/m/".to_owned(),
        "/m/../../etc/passwd".to_owned(),
        "/elsewhere".to_owned(),
    ] {
        let (r, body) = e.call(Method::GET, &p, &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{p}");
        answers.push((
            r.headers().get("content-type").cloned(),
            r.headers().get("cache-control").cloned(),
            body,
        ));
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "all 404s look alike"
    );
    // Other methods.
    let (r, _) = e.call(Method::POST, &path, &[]).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&r, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn cache_misses_read_the_store_once() {
    let e = env();
    let png = small_png();
    let path = e.put("image/png", png.clone());
    // A restarted store: first request reads the disk, the rest do not.
    let store = Arc::new(MediaStore::open(e.store.config().clone()).unwrap());
    for _ in 0..20 {
        let req = Request::get(format!("{path}/raw")).body(()).unwrap();
        let resp = serve(req, &store, &e.signer).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(store.stats().disk_reads, 1);
}

/// Over a real socket: hyper keeps our Content-Length on HEAD, and the bytes
/// fetched equal the stored bytes.
#[tokio::test]
async fn over_http() {
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let e = env();
    let png = small_png();
    let path = e.put("image/png", png.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = e.store.clone();
    let signer = e.signer.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = store.clone();
            let signer = signer.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let store = store.clone();
                    let signer = signer.clone();
                    async move { Ok::<_, std::convert::Infallible>(serve(req, &store, &signer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let fetch = |method: &'static str, p: String| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("{method} {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    };
    let raw = fetch("GET", format!("{path}/raw")).await;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {}", png.len())));
    assert_eq!(&raw[split + 4..], &png[..]);

    let head = fetch("HEAD", format!("{path}/raw")).await;
    let text = String::from_utf8_lossy(&head).to_lowercase();
    assert!(
        text.contains(&format!("content-length: {}", png.len())),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"), "no body after HEAD");

    let page = fetch("GET", path.clone()).await;
    let text = String::from_utf8_lossy(&page);
    assert!(text.contains("<img src="));
    let bad = fetch("GET", path.replace("/m/", "/m/0")).await;
    assert!(String::from_utf8_lossy(&bad).starts_with("HTTP/1.1 404"));
}

#[test]
fn range_parser() {
    assert_eq!(parse_range("bytes=0-0", 10), RangeAnswer::Part(0, 0));
    assert_eq!(parse_range("bytes=0-", 10), RangeAnswer::Part(0, 9));
    assert_eq!(parse_range("bytes=-100", 10), RangeAnswer::Part(0, 9));
    assert_eq!(parse_range("bytes=-0", 10), RangeAnswer::Unsatisfiable);
    assert_eq!(parse_range("bytes=10-", 10), RangeAnswer::Unsatisfiable);
    assert_eq!(parse_range("bytes=0-1", 0), RangeAnswer::Unsatisfiable);
    assert_eq!(parse_range("bytes=-", 10), RangeAnswer::Whole);
    assert_eq!(parse_range("bytes= 2 - 3 ", 10), RangeAnswer::Part(2, 3));
    assert_eq!(parse_range("bytes=+1-2", 10), RangeAnswer::Whole);
}

impl Env {
    /// Records a landing page of these media (stored for `acme`) and
    /// answers its path.
    fn landing(&self, text: &str, media: &[(&str, Bytes)]) -> String {
        let ids = media
            .iter()
            .map(|(ct, b)| self.store.put("acme", ct, b.clone()).unwrap().id.to_hex())
            .collect();
        let page = crate::media::LandingPage {
            from: "Acme <Outdoor>".into(),
            subject: "Sale & more".into(),
            text: text.into(),
            media: ids,
        };
        let code = self.signer.landing_code("acme", &page);
        assert!(self.store.put_landing(&code, &page).unwrap(), "written");
        assert!(!self.store.put_landing(&code, &page).unwrap(), "once");
        crate::media::link::landing_path(&code)
    }
}

#[tokio::test]
async fn a_landing_page_shows_brand_subject_text_and_each_item_from_its_own_path() {
    let e = env();
    let mut mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0isommp42".to_vec();
    mp4.extend_from_slice(&[0, 0, 0, 8, b'm', b'o', b'o', b'v']);
    let (png, mp4) = (small_png(), Bytes::from(mp4));
    let path = e.landing(
        "Hi <b>Ann</b>\nhttps://acme.example/x?a=1&b=2",
        &[("image/png", png.clone()), ("video/mp4", mp4.clone())],
    );
    let (r, body) = e.call(Method::GET, &path, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert!(header(&r, "content-security-policy").contains("default-src 'none'"));
    assert_eq!(header(&r, "x-frame-options"), "DENY");
    let html = std::str::from_utf8(&body).unwrap();
    let code = path.rsplit('/').next().unwrap();
    for want in [
        "<p class=\"from\">Acme &lt;Outdoor&gt;</p>",
        "<h1>Sale &amp; more</h1>",
        "Hi &lt;b&gt;Ann&lt;/b&gt;\n<a href=\"https://acme.example/x?a=1&amp;b=2\"",
        &format!("<img src=\"{code}/1\" alt=\"Picture 1 of 2 from Acme &lt;Outdoor&gt;\">"),
        &format!("src=\"{code}/2#t=0.1\" aria-label=\"Video 2 of 2 from Acme &lt;Outdoor&gt;\""),
    ] {
        assert!(html.contains(want), "{want:?} not in {html}");
    }
    // Each item from its path, with ranges as ever; nothing past the last.
    let (r, raw) = e.call(Method::GET, &format!("{path}/1"), &[]).await;
    assert_eq!(header(&r, "content-type"), "image/png");
    assert_eq!(raw, png);
    let (r, raw) = e
        .call(Method::GET, &format!("{path}/2"), &[("range", "bytes=0-3")])
        .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(raw, mp4.slice(0..4));
    let (r, body) = e.call(Method::HEAD, &path, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body.is_empty());
    let unknown = format!("/p/{}", "a".repeat(16));
    for bad in [
        format!("{path}/3"),
        format!("{path}/0"),
        format!("{path}/01"),
        format!("{path}/1/raw"),
        format!("{path}/"),
        format!("{path}x"),
        path.to_uppercase(),
        unknown,
        "/p/".into(),
        "/p/../../etc/passwd".into(),
    ] {
        let (r, _) = e.call(Method::GET, &bad, &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}
