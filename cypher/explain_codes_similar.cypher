// Batched rationale (similar patients) for a list of diagnosis codes (a new patient: no Visit node)
// and a list of drug classes: visits of *other* patients with one of the codes that received the drug,
// counted per (drug, code).
//   DiagnosisCode <-HAS_DIAGNOSIS- Visit -HAS_PRESCRIPTION-> Drug
// Aggregated in the query: one row per (drug, code) with the number of visits, the
// smallest visit id as the example, and the sources and licences of the relationships involved;
// kgrec/explain/paths.py assembles the path.
// @param codes LIST<STRING>  DiagnosisCode.id values
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// @param own LIST<STRING>  Visit.id values left out (a known patient's own visits; [] for a new one)
// Returns: drug, drug_name, code, code_name, n_visits, example, and for the two relationships
// (other visit->code, other visit->drug) their distinct 'source|licence' pairs (r1, r2).
MATCH (c:DiagnosisCode)<-[r1:HAS_DIAGNOSIS]-(o:Visit)-[r2:HAS_PRESCRIPTION]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs AND NOT o.id IN $own
RETURN drug.id AS drug, drug.name AS drug_name, c.id AS code, c.name AS code_name,
       count(DISTINCT o) AS n_visits, min(o.id) AS example,
       collect(DISTINCT r1.source + '|' + r1.licence) AS r1, collect(DISTINCT r2.source + '|' + r2.licence) AS r2
