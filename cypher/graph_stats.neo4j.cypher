// dialect: neo4j
// Variant of graph_stats.cypher for Neo4j and other Bolt servers (labels()/type() instead of
// Ladybug's label()). A file `<name>.<dialect>.cypher` whose first line is `// dialect: <dialect>`
// replaces `<name>.cypher` for stores of that dialect (see kgrec/graph/queries.py).
MATCH (n)
RETURN 'node' AS kind, labels(n)[0] AS name, n.source AS source, count(*) AS count
UNION ALL
MATCH ()-[r]->()
RETURN 'relationship' AS kind, type(r) AS name, r.source AS source, count(*) AS count
