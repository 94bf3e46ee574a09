// Graph statistics: node counts per label and source, relationship counts per type and source.
// Portable text for the embedded store (Ladybug: label() of a node or relationship); the Neo4j
// dialect (labels()/type()) is in graph_stats.neo4j.cypher.
MATCH (n)
RETURN 'node' AS kind, label(n) AS name, n.source AS source, count(*) AS count
UNION ALL
MATCH ()-[r]->()
RETURN 'relationship' AS kind, label(r) AS name, r.source AS source, count(*) AS count
