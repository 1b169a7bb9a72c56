//! The HTML of the landing pages: a fallback's whole message as the
//! recipient would have seen it as MMS ([`landing`]: the sender's display
//! name, the subject, the text with its links clickable, every media item
//! in order), and the bare media pages of links sent by earlier versions
//! ([`media_only`]).
//!
//! Hand-written: one small page, no template engine needed. Everything from
//! a tenant or a message is escaped ([`escape`]); links become anchors only
//! for `http`/`https` URLs. No script, no external resource: the page's CSP
//! allows its own media and inline style only. Readable on a phone (one
//! column, the viewport's width, images scaled down, text wrapping
//! anywhere), and in dark mode.

use super::MediaType;
use crate::media::landing::LandingPage;
use crate::media::store::Media;

const STYLE: &str = "\
:root{color-scheme:light dark}\
body{margin:0;background:#eef0f3;color:#15171a;font:1.0625rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
main{max-width:34rem;margin:0 auto;padding:1rem}\
article{background:#fff;border-radius:1rem;padding:1rem 1rem .25rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
.from{margin:0 0 .5rem;font-size:.875rem;font-weight:600;color:#4a5360;text-transform:none}\
h1{margin:0 0 .75rem;font-size:1.375rem;line-height:1.25}\
.text{margin:0 0 1rem;white-space:pre-wrap;overflow-wrap:anywhere}\
a{color:#0a58ca}\
img,video{display:block;max-width:100%;height:auto;margin:0 auto 1rem;border-radius:.5rem}\
video{width:100%;background:#000}\
pre{white-space:pre-wrap;overflow-wrap:anywhere;font:inherit;margin:0 0 1rem}\
footer{margin:1rem 0;font-size:.8125rem;color:#5b6470;text-align:center}\
@media (prefers-color-scheme:dark){body{background:#111316;color:#e8eaed}article{background:#1d2024}.from,footer{color:#a4acb6}a{color:#8ab4f8}}";

/// The page of `page`, whose `i`-th media item (from 0) is `items[i]`,
/// its bytes at the URL beside it.
pub fn landing(page: &LandingPage, items: &[(Media, String)]) -> String {
    let mut body = String::with_capacity(2048 + page.text.len() * 2);
    if !page.from.is_empty() {
        body.push_str(&format!("<p class=\"from\">{}</p>\n", escape(&page.from)));
    }
    if !page.subject.is_empty() {
        body.push_str(&format!("<h1>{}</h1>\n", escape(&page.subject)));
    }
    if !page.text.trim().is_empty() {
        body.push_str("<p class=\"text\">");
        body.push_str(&linkify(page.text.trim_end()));
        body.push_str("</p>\n");
    }
    let n = items.len();
    for (i, (media, url)) in items.iter().enumerate() {
        let what = match media.media_type {
            MediaType::Mp4 => "Video",
            _ => "Picture",
        };
        let alt = if page.from.is_empty() {
            format!("{what} {} of {n}", i + 1)
        } else {
            format!("{what} {} of {n} from {}", i + 1, page.from)
        };
        body.push_str(&item(media, url, &alt));
        body.push('\n');
    }
    let title = if !page.subject.is_empty() {
        page.subject.clone()
    } else if !page.from.is_empty() {
        format!("A message from {}", page.from)
    } else {
        "Your message".to_owned()
    };
    document(
        &title,
        &format!(
            "<article>\n{body}</article>\n\
             <footer>This message was sent to your phone as a text with a link.</footer>"
        ),
    )
}

/// The page showing only media items, each at the URL beside it.
pub fn media_only(items: &[(Media, String)]) -> String {
    let content: Vec<String> = items
        .iter()
        .map(|(media, url)| item(media, url, "Picture from your message"))
        .collect();
    document("Message media", &content.join("\n"))
}

fn document(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n\
         <style>{STYLE}</style>\n\
         </head>\n\
         <body>\n\
         <main>\n\
         {main}\n\
         </main>\n\
         </body>\n\
         </html>\n",
        escape(title)
    )
}

/// One media item, whose bytes are at `url`.
fn item(media: &Media, url: &str, alt: &str) -> String {
    let src = escape(url);
    match media.media_type {
        MediaType::Jpeg | MediaType::Png | MediaType::Gif => {
            format!("<img src=\"{src}\" alt=\"{}\">", escape(alt))
        }
        // `#t=0.1`: browsers that show no frame before playing (iOS
        // Safari) show that one, in place of a poster image.
        MediaType::Mp4 => format!(
            "<video controls playsinline preload=\"metadata\" src=\"{src}#t=0.1\" aria-label=\"{}\">\
             <a href=\"{src}\">Download the video</a></video>",
            escape(alt)
        ),
        MediaType::Text => format!(
            "<pre>{}</pre>",
            escape(&String::from_utf8_lossy(&media.bytes))
        ),
        MediaType::Smil => format!(
            "<p>This message holds a presentation that cannot be shown here. \
             <a href=\"{src}\">Download it</a>.</p>"
        ),
    }
}

/// `text` escaped, its `http://` and `https://` URLs made links (opened
/// without a referrer). A URL runs to the next whitespace or `<`, `>`,
/// `"`, less the punctuation that usually ends a sentence.
pub fn linkify(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    // ASCII lowercasing keeps every byte where it was: one copy to search.
    let lower = text.to_ascii_lowercase();
    let mut rest = text;
    while let Some(at) = find_url(&lower[text.len() - rest.len()..]) {
        out.push_str(&escape(&rest[..at]));
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'']);
        if url.len() <= "https://".len() {
            // A bare scheme is text.
            out.push_str(&escape(&tail[..end]));
        } else {
            let url_html = escape(url);
            out.push_str(&format!(
                "<a href=\"{url_html}\" rel=\"noopener noreferrer nofollow\">{url_html}</a>"
            ));
            out.push_str(&escape(&tail[url.len()..end]));
        }
        rest = &tail[end..];
    }
    out.push_str(&escape(rest));
    out
}

/// Where the first `http://` or `https://` in `lower` (lowercased text)
/// starts.
fn find_url(lower: &str) -> Option<usize> {
    [lower.find("https://"), lower.find("http://")]
        .into_iter()
        .flatten()
        .min()
}

/// Escapes text for HTML content and double- or single-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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
    fn links_are_anchors_and_everything_else_is_escaped() {
        assert_eq!(
            linkify("Sale <b>&</b> https://acme.example/x?a=1&b=2. Now!"),
            "Sale &lt;b&gt;&amp;&lt;/b&gt; <a href=\"https://acme.example/x?a=1&amp;b=2\" \
             rel=\"noopener noreferrer nofollow\">https://acme.example/x?a=1&amp;b=2</a>. Now!"
        );
        assert_eq!(
            linkify("(see HTTP://a.example)"),
            "(see <a href=\"HTTP://a.example\" rel=\"noopener noreferrer nofollow\">HTTP://a.example</a>)"
        );
        // A quote ends a URL: no way out of the attribute.
        assert_eq!(
            linkify("http://x.example\"onmouseover=alert(1)"),
            "<a href=\"http://x.example\" rel=\"noopener noreferrer nofollow\">http://x.example</a>&quot;onmouseover=alert(1)"
        );
        assert_eq!(linkify("javascript:alert(1)"), "javascript:alert(1)");
        assert_eq!(linkify("https:// x"), "https:// x");
        assert_eq!(
            linkify("héllo http://é.example ✓"),
            "héllo <a href=\"http://é.example\" rel=\"noopener noreferrer nofollow\">http://é.example</a> ✓"
        );
        assert_eq!(linkify(""), "");
    }
}
