"""`wirewatch feed`: RSS, Atom and RDF feeds and their article pages into the articles topic.

sources reads the feed list, fetch is the polite HTTP client, parse turns a feed document into
entries, extract turns an article page into text, seen and sink keep Kafka as the memory of what
was published, poll schedules it all, cli wires it to the command line. Everything from a feed or
a page is hostile data: it is never a path, a topic name or a URL of another scheme.
"""
