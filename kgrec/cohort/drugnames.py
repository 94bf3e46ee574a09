"""Free-text drug names -> ATC level 3, for sources without a code map (eICU orders, Synthea descriptions).

Dictionary (all open data, see docs/cohort-eicu-synthea.md):

* **WHO ATC level-5 names** (``mappings/atc_coding.csv.gz``), e.g. ``warfarin -> B01AA03``. A parenthesised
  part is dropped (``insulin (human) -> insulin``), kept flattened (``insulin human``) and, unless it is a
  qualifier such as ``human``/``pork``/``activated``, also used as an alias (``paracetamol (acetaminophen)``
  gives ``acetaminophen``). Names of several ingredients (``oxycodone and paracetamol``) form the
  combination table, not the single-ingredient dictionary.
* **DrugBank open vocabulary** (``kg/drugbank/drugbank_vocabulary.csv``, CC0): every common name and
  synonym of a drug maps to (a) the WHO codes of any of that drug's names (so ``APAP``, ``acetaminophen``
  reach paracetamol's ``N02BE01`` although the DrugBank slim table gives acetaminophen no ATC code), plus
  (b) the drug's ATC codes in ``kg/drugbank/drugbank.tsv`` **after a cross-check**: a DrugBank code is kept
  only if its WHO level-5 name resembles one of the drug's names (same words once salts are set aside, or
  one name's words contained in the other's) and is not a combination name. This drops e.g. lisinopril's
  ``C09AA03`` from loratadine. Codes absent from the WHO file cannot be checked and are kept.

Matching a name:

1. Normalise: lower-case, split on anything that is not a letter, digit, ``.`` or ``%``; drop dose tokens
   (``5``, ``25mg``, ``0.9%``, ``5-325``), units, dose forms, routes and packaging words (``mg``, ``tabs``,
   ``soln``, ``vial``, ``po``, ``iv``, ``extended release``...).
2. Find drug mentions greedily, longest word n-gram first (up to 8 words), left to right, without overlap.
   At a given n-gram the WHO dictionary wins over DrugBank. Salt words (``sodium``, ``hcl``, ``sulfate``...)
   stay in the text so that ``sodium chloride`` and ``magnesium sulfate`` match as drugs, but a mention made
   of salt words alone is dropped when the name has any other mention (``warfarin sodium`` -> warfarin).
3. Vehicles (``sodium chloride``, ``dextrose``, ``water``...) are dropped when the name holds another
   ingredient (``HEPARIN 25000 UNITS IN SODIUM CHLORIDE 0.45%`` -> heparin); alone they are the drug.
4. One ingredient: its ATC codes. Several distinct ingredients (``Acetaminophen 325 MG / Oxycodone
   Hydrochloride 5 MG``, ``HYDROCODONE-ACETAMINOPHEN``): the WHO combination code whose parts are exactly
   these ingredients when WHO has one (``oxycodone and paracetamol`` -> ``N02AJ17`` -> ``N02A``; parts may
   be combination-only ingredients such as ``norelgestromin`` or class words such as ``diuretics``), else
   the codes of all the ingredients together, resolved as in 5. This is order-independent: eICU's
   ``HYDROCODONE-ACETAMINOPHEN`` and Synthea's ``Acetaminophen / Hydrocodone`` both give ``N02B``.
5. Several ATC3 classes (aspirin: ``A01A``, ``B01A``, ``N02B``) are resolved deterministically by the GSN
   map, so a name gets the class a GSN-mapped MIMIC prescription of the same ingredient gets: first the
   class whose member codes the GSN map uses most (per ATC-5 code), then the class's overall frequency in
   the GSN map (:attr:`Mappings.atc3_prior`), then alphabetical order. This inherits the GSN map's choices
   (aspirin ``A01A``, diltiazem ``C05A``, prednisone ``A07E``, ibuprofen ``C01E``) and keeps the ATC3
   vocabularies of the sources aligned.

Results are cached per distinct name; :meth:`DrugNameMatcher.match_series` maps a column by its uniques.
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import permutations

import pandas as pd

from kgrec.cohort.codes import Mappings, atc3
from kgrec.tables import read_table

MAX_NGRAM = 8

# Words that never name a drug in an order string: units, dose forms, routes, packaging, release.
NOISE = frozenset(
    """
    mg mcg ug g gm gram grams kg ml l dl meq mmol mol unit units unt iu u international % hr hrs h hour hours day days
    min minute actuat actuation dose doses puff puffs spray sprays drop drops per x each total
    tab tabs tablet tablets tbec tbcr tbdp tb24 tb12 cp24 cp12 cpep cpdr cap caps capsule capsules capl caplet caplets
    soln sol solution solutions solr susp suspension suspensions syrup elixir liq liquid conc concentrate emul emulsion
    inj injection injectable injectables ij ivpb ivp pb vial vials amp ampul ampule ampoule bag bags btl bottle syr syringe
    syringes sdv mdv lvp mbp cont container flex premix premixed piggyback pack packet packs pak kit pen pens cartridge
    cartridges carpuject tubex autoinjector auto injector prefilled device system systems
    ec dr cr er sr xr xl la odt sa ir chew chewable disintegrating dispersible effervescent enteric coated
    extended delayed release controlled sustained modified immediate orally
    oral po per pr iv im sc sq subq subcut subcutaneous intravenous intramuscular intradermal topical topically
    transdermal td patch patches cream crm oint ointment gel lotion foam shampoo paste powder pwd pwdr granules
    nasal intranasal nebulizer neb nebu inhaler inh inhal inhalation inhalant aerosol aer hfa mdi dpi metered dry
    ophthalmic ophth opht otic eye ear rectal rect supp suppository suppositories vaginal vag mucosal buccal
    sublingual sl implant intrauterine enema irrigation irrig
    in with w wo and or of for to the an as at by
    nda anda usp nf bq tr pf preservative free
    """.split()
)

# Salt / counter-ion words: kept for matching (``sodium chloride``), never a mention on their own when the
# name has another one (``warfarin sodium``).
SALTS = frozenset(
    """
    sodium potassium calcium magnesium lithium zinc aluminum aluminium ammonium disodium dipotassium
    hcl hydrochloride dihydrochloride hydrobromide hbr hydroiodide sulfate sulphate bisulfate tartrate bitartrate
    succinate maleate mesylate besylate camsylate tosylate citrate acetate diacetate phosphate diphosphate
    chloride bromide iodide fluoride fumarate hemifumarate gluconate carbonate bicarbonate lactate oxide hydroxide
    nitrate malate mandelate napsylate pamoate palmitate propionate dipropionate furoate valerate butyrate
    monohydrate dihydrate trihydrate hemihydrate sesquihydrate anhydrous hyclate hydrate salt base free
    methylbromide estolate ethylsuccinate stearate trometamol tromethamine meglumine
    benzoate decanoate enanthate cypionate pivalate
    """.split()
)

# Parenthesised qualifiers in WHO names that are not alternative names of the drug.
QUALIFIERS = frozenset(
    """
    human beef pork bovine porcine horse equine rabbit sheep salmon activated levorotatory racemic synthetic natural
    different salts in combination citrate chloride enema 13c 99mtc 123i 124i 18f 111in
    """.split()
)

# Vehicles: a mention of these is dropped when the name holds another ingredient ("heparin ... in sodium
# chloride 0.9%"); alone they are the drug (saline, dextrose 50%).
VEHICLES = frozenset(
    ["sodium chloride", "nacl", "dextrose", "glucose", "water", "sterile water", "ringer", "lactated ringer",
     "ringer lactate", "d5w", "ns"]
)

# Class words in WHO combination names ("lisinopril and diuretics") and the ATC prefix they stand for.
CLASS_PARTS = {"diuretics": "C03", "thiazides": "C03A", "potassium-sparing agents": "C03D", "estrogen": "G03C"}

_DOSE = re.compile(r"^[\d.,/%:+\-]*\d[\d.,/%:+\-]*[a-z%]*$")
_SPLIT = re.compile(r"[^a-z0-9.%]+")
_WORD = re.compile(r"[a-z0-9.%]+")
_COMBO_SPLIT = re.compile(r"\s*,\s*|\s+and\s+")
_COMBINATION_WORDS = re.compile(r"\b(and|combinations?|with|excl|incl|various|other)\b|,")


def tokens(text: str) -> tuple[str, ...]:
    """Normalised words of a drug name: lower-case, doses/units/forms/routes removed, salts kept."""
    s = str(text).lower()
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # 1,000 -> 1000
    out = []
    for t in _SPLIT.split(s):
        t = t.strip(".")
        if not t or t in NOISE or _DOSE.match(t) or t.isdigit():
            continue
        if "%" in t:
            continue
        out.append(t)
    return tuple(out)


def name_key(text: str) -> tuple[str, ...]:
    """Normalised words of a dictionary name (no noise removal beyond punctuation)."""
    return tuple(t for w in _WORD.findall(str(text).lower()) if (t := w.strip(".")))


# Short DrugBank synonyms (< 5 letters, one word) are mostly ambiguous acronyms ("air", "met", "inh" for
# isoniazid, "dex"); only these common clinical abbreviations are kept.
SHORT_OK = frozenset("apap asa kcl nacl hctz mtx 5fu tpa rtpa epo nac isdn ismn txa urea iron dhea gaba acth hcg".split())


def _usable(key: tuple[str, ...]) -> bool:
    """A DrugBank name worth matching: not a lone short acronym, not a noise/qualifier word."""
    if not key or not any(len(w) >= 3 for w in key):
        return False
    if len(key) == 1:
        w = key[0]
        if w in NOISE or w in QUALIFIERS or w in SALTS:
            return False
        if len(w) < 5 and w not in SHORT_OK:
            return False
    return True


def _core(words: Iterable[str]) -> frozenset[str]:
    return frozenset(w for w in words if w not in SALTS)


@dataclass(frozen=True)
class Match:
    """What :meth:`DrugNameMatcher.explain` found for one name."""

    atc3: str | None
    ingredients: tuple[str, ...]  # the matched mentions, in text order
    codes: tuple[str, ...]  # the ATC codes the decision was taken from
    source: str  # who, drugbank, who-combination, none


class DrugNameMatcher:
    """Map free-text drug names to ATC3 with WHO ATC names and DrugBank open-vocabulary synonyms.

    Args:
        mappings: the open code maps (gives the data folder and the ATC3 prior).
    """

    def __init__(self, mappings: Mappings):
        self.mappings = mappings
        self._cache: dict[str, Match] = {}

    # ---- dictionary ----
    @cached_property
    def _who_rows(self) -> list[tuple[str, str]]:
        df = read_table(self.mappings.data_dir / "mappings/atc_coding.csv.gz", ["atc_code", "atc_name"])
        return [(c.upper(), n) for c, n in zip(df["atc_code"], df["atc_name"]) if len(c) == 7 and n]

    @cached_property
    def who_names(self) -> dict[str, list[tuple[str, ...]]]:
        """ATC level-5 code -> its single-ingredient name keys (all variants)."""
        out: dict[str, list[tuple[str, ...]]] = {}
        for code, name in self._who_rows:
            for key in self._who_variants(name):
                out.setdefault(code, [])
                if key not in out[code]:
                    out[code].append(key)
        return out

    @staticmethod
    def _who_variants(name: str) -> list[tuple[str, ...]]:
        """Single-ingredient keys of one WHO name; empty for combination/class names."""
        low = name.lower().strip()
        outer = re.sub(r"\([^)]*\)", " ", low)
        if _COMBINATION_WORDS.search(outer):
            return []
        keys = [name_key(outer), name_key(low.replace("(", " ").replace(")", " "))]
        inner = re.findall(r"\(([^)]*)\)", low)
        if len(inner) == 1:
            alias = name_key(inner[0])
            if alias and not (set(alias) & QUALIFIERS) and not _COMBINATION_WORDS.search(inner[0]):
                keys.append(alias)
        return [k for k in dict.fromkeys(keys) if k and any(len(w) >= 3 for w in k)]

    @cached_property
    def who_dict(self) -> dict[tuple[str, ...], frozenset[str]]:
        out: dict[tuple[str, ...], set[str]] = {}
        for code, keys in self.who_names.items():
            for k in keys:
                out.setdefault(k, set()).add(code)
        return {k: frozenset(v) for k, v in out.items()}

    @cached_property
    def _drugbank(self) -> tuple[dict[tuple[str, ...], frozenset[str]], dict]:
        vocab = read_table(
            self.mappings.data_dir / "kg/drugbank/drugbank_vocabulary.csv",
            ["drugbank id", "common name", "synonyms"],
        )
        db_atc = self.mappings.drugbank_atc
        who = self.who_dict
        who_names = self.who_names
        out: dict[tuple[str, ...], set[str]] = {}
        in_who = {c for c, _ in self._who_rows}
        all_keys: set[tuple[str, ...]] = set()
        stats = {"drugbank_codes": 0, "drugbank_codes_dropped": 0, "dropped_examples": []}
        for dbid, common, syn in zip(vocab["drugbank id"], vocab["common name"], vocab["synonyms"]):
            names = [common] + [s for s in syn.split(" | ") if s]
            names = [n[:-4] if n.endswith(" NOS") else n for n in names]  # "Vitamin B12 NOS"
            keys = [k for k in dict.fromkeys(name_key(n) for n in names) if _usable(k)]
            if not keys:
                continue
            all_keys.update(keys)
            codes: set[str] = set()
            for k in keys:  # (a) WHO codes reached through any of the drug's names
                codes |= who.get(k, frozenset())
            cores = [_core(k) for k in keys]
            for code in db_atc.get(dbid, []):  # (b) DrugBank's own codes, cross-checked
                code = code.strip().upper()
                if not atc3(code):
                    continue
                stats["drugbank_codes"] += 1
                wn = who_names.get(code)
                if code not in in_who:
                    codes.add(code)  # not in the WHO file: nothing to check against
                elif wn and any(self._resembles(_core(w), c) for w in wn for c in cores):
                    codes.add(code)
                else:
                    stats["drugbank_codes_dropped"] += 1
                    if len(stats["dropped_examples"]) < 20:
                        stats["dropped_examples"].append([common, code])
            if not codes:
                continue
            for k in keys:
                out.setdefault(k, set()).update(codes)
        stats["all_keys"] = frozenset(all_keys)
        return {k: frozenset(v) for k, v in out.items()}, stats

    @staticmethod
    def _resembles(a: frozenset[str], b: frozenset[str]) -> bool:
        return bool(a) and bool(b) and (a <= b or b <= a)

    @property
    def drugbank_dict(self) -> dict[tuple[str, ...], frozenset[str]]:
        return self._drugbank[0]

    @property
    def crosscheck_report(self) -> dict:
        """How many DrugBank ATC codes the WHO-name cross-check dropped (with examples)."""
        return {k: v for k, v in self._drugbank[1].items() if k != "all_keys"}

    @cached_property
    def combinations(self) -> list[tuple[list[frozenset[str]], str]]:
        """WHO combination codes whose every part is identifiable: (part identities, code).

        A part's identity is its single-ingredient ATC codes; a part with none (``norelgestromin``, only
        ever in combinations) is ``name:<words>``, and a few class words stand for an ATC prefix
        (``lisinopril and diuretics``: ``class:C03``)."""
        out = []
        for code, name in self._who_rows:
            low = re.sub(r"\([^)]*\)", " ", name.lower())
            parts = [p.strip() for p in _COMBO_SPLIT.split(low) if p.strip()]
            if len(parts) < 2:
                continue
            sets = []
            for p in parts:
                k = name_key(p)
                if p in CLASS_PARTS:
                    s = frozenset({f"class:{CLASS_PARTS[p]}"})
                elif k in self._combo_only:
                    s = self.drugbank_dict.get(k) or frozenset({"name:" + " ".join(k)})
                else:
                    s = self.who_dict.get(k) or self.drugbank_dict.get(k)
                if not s:
                    break
                sets.append(s)
            else:
                out.append((sets, code))
        return out

    @cached_property
    def _combo_only(self) -> frozenset[tuple[str, ...]]:
        """Ingredient names that occur in WHO combination names but have no single-ingredient code."""
        keys = set()
        for _, name in self._who_rows:
            low = re.sub(r"\([^)]*\)", " ", name.lower())
            parts = [p.strip() for p in _COMBO_SPLIT.split(low) if p.strip()]
            if len(parts) < 2:
                continue
            for p in parts:
                k = name_key(p)
                if k in self._drugbank[1]["all_keys"] and k not in self.who_dict:
                    keys.add(k)
        return frozenset(keys)

    @cached_property
    def _max_len(self) -> int:
        lens = [len(k) for k in self.who_dict] + [len(k) for k in self.drugbank_dict]
        return min(MAX_NGRAM, max(lens, default=1))

    # ---- matching ----
    def _lookup(self, key: tuple[str, ...]) -> tuple[frozenset[str] | None, str]:
        if codes := self.who_dict.get(key):
            return codes, "who"
        if codes := self.drugbank_dict.get(key):
            return codes, "drugbank"
        if key in self._combo_only:
            return frozenset({"name:" + " ".join(key)}), "who-part"
        return None, ""

    def _mentions(self, words: tuple[str, ...]) -> list[tuple[int, tuple[str, ...], frozenset[str], str]]:
        """Greedy longest-first, left-to-right non-overlapping dictionary mentions, in text order."""
        found = []
        taken = [False] * len(words)
        for n in range(min(self._max_len, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                if any(taken[i : i + n]):
                    continue
                key = words[i : i + n]
                codes, src = self._lookup(key)
                if codes:
                    found.append((i, key, codes, src))
                    for j in range(i, i + n):
                        taken[j] = True
        found.sort(key=lambda m: m[0])
        real = [m for m in found if not all(w in SALTS for w in m[1])]
        return real if real else found

    @cached_property
    def gsn_code_counts(self) -> Counter:
        """How many GSNs the GSN map sends to each ATC code (level 5 where given)."""
        df = read_table(self.mappings.data_dir / "mappings/gsn_atc_ndc_mapping.csv.gz", ["gsn", "atc"])
        df = df[(df["gsn"] != "") & (df["atc"] != "")].drop_duplicates(["gsn", "atc"])
        return Counter(df["atc"].str.upper())

    def _pick(self, codes: Iterable[str]) -> str | None:
        """The ATC3 class of a set of codes. Several classes: the class whose member codes the GSN map uses
        most (what a GSN-mapped MIMIC prescription of this ingredient would get), then the class's overall
        frequency in the GSN map (:attr:`Mappings.atc3_prior`), then alphabetical order."""
        real = [c for c in codes if not c.startswith(("name:", "class:")) and atc3(c)]
        if not real:
            return None
        used: Counter = Counter()
        for c in set(real):
            used[atc3(c)] += self.gsn_code_counts.get(c, 0)
        prior = self.mappings.atc3_prior
        classes = {atc3(c) for c in real}
        return sorted(classes, key=lambda a: (-used[a], -prior.get(a, 0), a))[0]

    @staticmethod
    def _part_matches(part: frozenset[str], ingredient: frozenset[str]) -> bool:
        if part & ingredient:
            return True
        prefixes = [p[6:] for p in part if p.startswith("class:")]
        return any(c.startswith(pre) for pre in prefixes for c in ingredient if not c.startswith("name:"))

    def _combination(self, sets: list[frozenset[str]]) -> tuple[str | None, tuple[str, ...]] | None:
        hits = []
        union = frozenset().union(*sets)
        for parts, code in self.combinations:
            if len(parts) != len(sets):
                continue
            if not all(p & union or any(i.startswith("class:") for i in p) for p in parts):
                continue
            if any(all(self._part_matches(p, q) for p, q in zip(parts, perm)) for perm in permutations(sets)):
                hits.append(code)
        return (self._pick(hits), tuple(sorted(set(hits)))) if hits else None

    def explain(self, name: str) -> Match:
        """The full decision for one name (cached)."""
        key = "" if name is None else str(name)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        words = tokens(key)
        mentions = self._mentions(words) if words else []
        distinct: list[tuple[int, tuple[str, ...], frozenset[str], str]] = []
        for m in mentions:  # one entry per ingredient (same identity = same ingredient)
            if not any(m[2] == d[2] for d in distinct):
                distinct.append(m)
        active = [d for d in distinct if " ".join(d[1]) not in VEHICLES] or distinct
        names = tuple(" ".join(d[1]) for d in distinct)
        res = Match(None, names, (), "none")
        if len(active) >= 2 and len(active) <= 4 and (combo := self._combination([d[2] for d in active])):
            res = Match(combo[0], names, combo[1], "who-combination")
        elif active:
            # one ingredient, or a combination WHO has no code for: the union of the active ingredients'
            # codes, resolved by the prior (order-independent: HYDROCODONE-ACETAMINOPHEN and
            # Acetaminophen / Hydrocodone get the same class)
            codes = sorted({c for d in active for c in d[2] if not c.startswith(("name:", "class:"))})
            a = self._pick(codes)
            if a is not None:
                src = {d[3] for d in active if any(atc3(c) == a for c in d[2] if not c.startswith("name:"))}
                res = Match(a, names, tuple(codes), "who" if "who" in src else sorted(src)[0])
        self._cache[key] = res
        return res

    def match(self, name: str) -> str | None:
        """ATC3 class (e.g. ``"B01A"``) of a free-text drug name, or None."""
        return self.explain(name).atc3

    def match_series(self, names: pd.Series) -> pd.Series:
        """:meth:`match` over a column, computed once per distinct value; None where unmapped."""
        s = names.fillna("").astype(str)
        uniq = pd.unique(s)
        table = {u: self.match(u) for u in uniq}
        return s.map(table).astype(object).where(s.map(table).notna(), None)


_MATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def matcher_for(mappings: Mappings) -> DrugNameMatcher:
    """One shared :class:`DrugNameMatcher` per :class:`Mappings` (the dictionary takes ~0.5 s to build)."""
    m = _MATCHERS.get(mappings)
    if m is None:
        m = _MATCHERS[mappings] = DrugNameMatcher(mappings)
    return m
