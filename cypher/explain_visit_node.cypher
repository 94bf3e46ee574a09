// Whether a visit is in the graph, with its patient (`kgrec recommend` falls back to paths from the
// visit's diagnosis codes when the graph was loaded without this visit).
// @param visit_id STRING  Visit.id, e.g. mimic3:142345
// Returns at most one row: visit, patient.
MATCH (pt:Patient)-[:HAS_VISIT]->(v:Visit {id: $visit_id})
RETURN v.id AS visit, pt.id AS patient
