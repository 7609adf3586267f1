//! Writing the XML botocore's parsers read: the Query envelope
//! (`<OpResponse><OpResult>…</OpResult><ResponseMetadata>`), the EC2 envelope (children under
//! the root, `<item>` lists, `requestId`) and both error layouts. Text is always escaped;
//! booleans are lower case; lists are always written, empty ones too.

use super::error::AwsError;

/// An XML document being written, element by element.
#[derive(Default)]
pub struct Xml {
    out: String,
}

/// Escapes `text` for an element's content.
pub fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

impl Xml {
    /// An empty document body.
    pub fn new() -> Self {
        Self::default()
    }

    /// `<tag>`.
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `</tag>`.
    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag>text</tag>`, escaped.
    pub fn leaf(&mut self, tag: &str, text: impl AsRef<str>) -> &mut Self {
        self.open(tag);
        escape(text.as_ref(), &mut self.out);
        self.close(tag)
    }

    /// `<tag>text</tag>` when there is a value.
    pub fn opt(&mut self, tag: &str, text: Option<impl AsRef<str>>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(tag, t);
        }
        self
    }

    /// `<tag>true|false</tag>`.
    pub fn boolean(&mut self, tag: &str, v: bool) -> &mut Self {
        self.leaf(tag, if v { "true" } else { "false" })
    }

    /// `<tag>` with `f` writing the children, then `</tag>`.
    pub fn node(&mut self, tag: &str, f: impl FnOnce(&mut Xml)) -> &mut Self {
        self.open(tag);
        f(self);
        self.close(tag)
    }

    /// A list: `<tag>` then `<item_tag>…</item_tag>` per item (empty lists are written too).
    pub fn list<T>(
        &mut self,
        tag: &str,
        item_tag: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        self.open(tag);
        for item in items {
            self.open(item_tag);
            f(self, item);
            self.close(item_tag);
        }
        self.close(tag)
    }

    /// A list of strings under `member` (Query) or `item` (EC2).
    pub fn strings<S: AsRef<str>>(
        &mut self,
        tag: &str,
        item_tag: &str,
        items: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.open(tag);
        for s in items {
            self.leaf(item_tag, s);
        }
        self.close(tag)
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

const PROLOG: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// A Query service's success: `result` is the `<OpResult>`'s content, `None` for operations
/// without an output (then only `ResponseMetadata`, as the model has no result wrapper).
pub fn query_response(action: &str, ns: &str, result: Option<&str>, request_id: &str) -> String {
    let mut s = String::with_capacity(256 + result.map_or(0, str::len));
    s.push_str(PROLOG);
    s.push_str(&format!("<{action}Response xmlns=\"{ns}\">"));
    if let Some(r) = result {
        s.push_str(&format!("<{action}Result>{r}</{action}Result>"));
    }
    s.push_str("<ResponseMetadata><RequestId>");
    escape(request_id, &mut s);
    s.push_str(&format!(
        "</RequestId></ResponseMetadata></{action}Response>"
    ));
    s
}

/// EC2's success: children directly under the root, `requestId` first.
pub fn ec2_response(action: &str, body: &str, request_id: &str) -> String {
    let mut s = String::with_capacity(256 + body.len());
    s.push_str(PROLOG);
    s.push_str(&format!(
        "<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"
    ));
    escape(request_id, &mut s);
    s.push_str("</requestId>");
    s.push_str(body);
    s.push_str(&format!("</{action}Response>"));
    s
}

/// A Query service's error (`ErrorResponse`/`Error`/`RequestId`).
pub fn query_error(ns: &str, e: &AwsError, request_id: &str) -> String {
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let mut s = String::with_capacity(256);
    s.push_str(PROLOG);
    s.push_str(&format!(
        "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>"
    ));
    escape(&e.code, &mut s);
    s.push_str("</Code><Message>");
    escape(&e.message, &mut s);
    s.push_str("</Message></Error><RequestId>");
    escape(request_id, &mut s);
    s.push_str("</RequestId></ErrorResponse>");
    s
}

/// EC2's error (`Response`/`Errors`/`Error`/`RequestID`).
pub fn ec2_error(e: &AwsError, request_id: &str) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(PROLOG);
    s.push_str("<Response><Errors><Error><Code>");
    escape(&e.code, &mut s);
    s.push_str("</Code><Message>");
    escape(&e.message, &mut s);
    s.push_str("</Message></Error></Errors><RequestID>");
    escape(request_id, &mut s);
    s.push_str("</RequestID></Response>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_empty_lists_are_written() {
        let mut x = Xml::new();
        x.leaf("Message", "a < b & \"c\"")
            .strings("Values", "member", Vec::<String>::new())
            .boolean("IsDefault", false);
        assert_eq!(
            x.finish(),
            "<Message>a &lt; b &amp; &quot;c&quot;</Message><Values></Values>\
             <IsDefault>false</IsDefault>"
        );
    }

    #[test]
    fn envelopes_carry_the_request_id_where_each_parser_reads_it() {
        let q = query_response("DeleteRule", "ns", Some(""), "r-1");
        assert!(q.contains("<DeleteRuleResult></DeleteRuleResult>"));
        assert!(q.contains("<ResponseMetadata><RequestId>r-1</RequestId>"));
        let none = query_response("SetDesiredCapacity", "ns", None, "r-2");
        assert!(!none.contains("Result>"));
        let e = ec2_error(&AwsError::missing("ImageId"), "r-3");
        assert!(e.contains("<Code>MissingParameter</Code>") && e.contains("<RequestID>r-3"));
    }
}
