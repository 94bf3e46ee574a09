// Rationale from similar patients: visits of *other* patients that share a diagnosis code with this
// visit and received the drug.
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode <-HAS_DIAGNOSIS- Visit -HAS_PRESCRIPTION-> Drug
// Visits of the same patient are left out (they would leak the patient's own history).
// @param visit_id STRING  Visit.id
// @param drug STRING  Drug.id (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), the other visit and
// the shared code.
MATCH (pt:Patient)-[:HAS_VISIT]->(v:Visit {id: $visit_id})
MATCH p = (v)-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)<-[:HAS_DIAGNOSIS]-(o:Visit)-[:HAS_PRESCRIPTION]->(drug:Drug {id: $drug})
MATCH (other:Patient)-[:HAS_VISIT]->(o)
WHERE other.id <> pt.id
RETURN p AS path, o.id AS similar_visit, other.id AS similar_patient, c.id AS shared_code
ORDER BY similar_visit, shared_code
LIMIT 50
