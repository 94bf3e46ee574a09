// A drug class's neighbourhood: every relationship of the Drug node, both directions.
// @param drug STRING  Drug.id (ATC level 3)
// Returns one row per relationship: `path` (drug, relationship with source and licence, neighbour),
// the neighbour's id and name.
MATCH p = (d:Drug {id: $drug})-[r]-(n)
RETURN p AS path, n.id AS neighbour, n.name AS name
ORDER BY neighbour
LIMIT 200
