"""Feed documents as publishers write them (RSS 2.0, Atom 1.0, RSS 1.0/RDF), for the feed tests.

Each takes the site's base URL; its items link to /<kind>/<n>.html, whose pages page() builds.
"""

from stream.devtools.feedserver import article_page


def story(kind: str, n: int) -> tuple[str, str]:
    """(title, text) of item n of a feed: several paragraphs, a first and a last one to look for."""
    title = f"{kind.upper()} story {n}: river floods the old town"
    paragraphs = [f"FIRST paragraph of {kind} story {n}: the river rose two metres overnight."]
    paragraphs += [
        f"Paragraph {i} of {kind} story {n}. Rescue teams moved residents from the lower streets while "
        "volunteers filled sandbags along the embankment and the council opened the school as a shelter."
        for i in range(2, 7)
    ]
    paragraphs.append(f"LAST paragraph of {kind} story {n}: the water is expected to fall by Friday.")
    return title, "\n".join(paragraphs)


def summary(kind: str, n: int) -> str:
    return f"Summary of {kind} story {n}: the river rose overnight."


def page(kind: str, n: int) -> bytes:
    title, text = story(kind, n)
    return article_page(title, text, f"2024-03-0{n % 9 + 1}T08:00:00+00:00")


def rss2(base: str, items: range) -> bytes:
    entries = "".join(
        f"""
    <item>
      <title>{story("rss", n)[0]}</title>
      <link>{base}/rss/{n}.html?utm_source=rss&amp;utm_medium=feed</link>
      <guid isPermaLink="false">rss-{n}</guid>
      <description><![CDATA[<p>{summary("rss", n)}</p>]]></description>
      <pubDate>Mon, 04 Mar 2024 0{n % 9}:30:00 +0100</pubDate>
      <dc:creator>Staff</dc:creator>
    </item>"""
        for n in items
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>The Riverside Herald</title>
    <link>{base}/</link>
    <atom:link href="{base}/rss.xml" rel="self" type="application/rss+xml"/>
    <description>News from the valley</description>
    <language>en-gb</language>
    <lastBuildDate>Mon, 04 Mar 2024 10:00:00 +0000</lastBuildDate>{entries}
  </channel>
</rss>
""".encode()


def atom(base: str, items: range) -> bytes:
    entries = "".join(
        f"""
  <entry>
    <title type="html">{story("atom", n)[0]}</title>
    <link rel="alternate" type="text/html" href="{base}/atom/{n}.html"/>
    <id>tag:valley.example,2024:atom-{n}</id>
    <updated>2024-03-04T0{n % 9}:15:00Z</updated>
    <published>2024-03-04T0{n % 9}:10:00Z</published>
    <summary type="html">&lt;b&gt;{summary("atom", n)}&lt;/b&gt;</summary>
    <author><name>Desk</name></author>
  </entry>"""
        for n in items
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Valley Atom News</title>
  <link href="{base}/"/>
  <link rel="self" href="{base}/atom.xml"/>
  <id>tag:valley.example,2024:feed</id>
  <updated>2024-03-04T10:00:00Z</updated>{entries}
</feed>
""".encode()


def rdf(base: str, items: range) -> bytes:
    seq = "".join(f'<rdf:li rdf:resource="{base}/rdf/{n}.html"/>' for n in items)
    entries = "".join(
        f"""
  <item rdf:about="{base}/rdf/{n}.html">
    <title>{story("rdf", n)[0]}</title>
    <link>{base}/rdf/{n}.html</link>
    <description>{summary("rdf", n)}</description>
    <dc:date>2024-03-04T0{n % 9}:45:00+00:00</dc:date>
  </item>"""
        for n in items
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="{base}/rdf.xml">
    <title>Valley RDF Digest</title>
    <link>{base}/</link>
    <description>The digest</description>
    <items><rdf:Seq>{seq}</rdf:Seq></items>
  </channel>{entries}
</rdf:RDF>
""".encode()


DOCUMENTS = {
    "rss": (rss2, "application/rss+xml"),
    "atom": (atom, "application/atom+xml"),
    "rdf": (rdf, "application/rdf+xml"),
}
