"""The frozen backbone's encoding store (kgrec.teacher.encodings): content-addressed states on disk,
shared across fits and cohorts, checksummed shards."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.cohort.samples import build_samples
from kgrec.teacher import encodings as enc
from tests.test_teacher import tiny_cohort, tiny_models  # noqa: F401  (fixture)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path / "cache"))
    enc.clear_memory()
    yield tmp_path / "cache"
    enc.clear_memory()


SETTINGS = {"format": 1, "backbone": "b" * 64, "pooling": "mean", "dtype": "float32", "device": "cpu"}


def test_states_survive_the_process_and_a_corrupt_shard_is_removed_not_used(cache):
    s = enc.EncodingStore(SETTINGS)
    hashes = [enc.token_hash([101, i, 102]) for i in range(5)]
    states = np.arange(15, dtype=np.float32).reshape(5, 3)
    assert s.get(hashes) == [None] * 5
    s.put(hashes[:3], states[:3])
    s.put(hashes[3:], states[3:])
    shards = sorted((cache / "encodings").glob("*/shard-*.safetensors"))
    assert len(shards) == 2 and (shards[0].parent / "about.json").exists()
    enc.clear_memory()  # a new process: only the disk is left
    got = enc.EncodingStore(SETTINGS).get(hashes)
    assert np.array_equal(np.stack(got), states)
    # another key (another backbone or precision) shares nothing
    assert enc.EncodingStore({**SETTINGS, "dtype": "bfloat16"}).get(hashes) == [None] * 5
    # a flipped byte: the shard fails its checksum, is reported and removed, its states are missing (recomputed)
    raw = bytearray(shards[0].read_bytes())
    raw[-1] ^= 0xFF
    shards[0].write_bytes(bytes(raw))
    enc.clear_memory()
    again = enc.EncodingStore(SETTINGS)
    got = again.get(hashes)
    assert sum(g is None for g in got) in (2, 3) and not shards[0].exists()
    assert again.notes["removed_corrupt_shards"] == [shards[0].name]


def test_many_shards_are_merged_and_off_keeps_memory_only(cache, monkeypatch):
    monkeypatch.setattr(enc, "MAX_SHARDS", 3)
    s = enc.EncodingStore(SETTINGS)
    hashes = [enc.token_hash([i]) for i in range(6)]
    for i, h in enumerate(hashes):
        s.put([h], np.full((1, 2), i, np.float32))
    shards = list((cache / "encodings").glob("*/shard-*.safetensors"))
    assert 1 <= len(shards) <= 3
    enc.clear_memory()
    assert [float(g[0]) for g in enc.EncodingStore(SETTINGS).get(hashes)] == [0, 1, 2, 3, 4, 5]
    monkeypatch.setenv("KGREC_CACHE", "off")
    enc.clear_memory()
    off = enc.EncodingStore({**SETTINGS, "device": "x"})
    assert off.folder is None
    off.put(hashes[:1], np.ones((1, 2), np.float32))
    assert off.get(hashes[:1])[0] is not None  # memory only
    with enc.disabled():
        assert off.get(hashes[:1]) == [None]


def test_teacher_encodes_each_prompt_once_across_fits_and_cohorts(cache, tiny_models, monkeypatch):  # noqa: F811
    """Two fits on different training patients, then a cohort holding the same visits under other ids
    (a pooled cohort): only prompts never seen are encoded; the states equal a fresh encoding."""
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher.cache import no_state_cache

    monkeypatch.delenv("KGREC_WORKSPACE", raising=False)
    encoded: list[int] = []
    orig = TeacherRecommender._encode_all

    def counting(self, inputs, device, autocast=None):
        encoded.append(len(inputs["ids"]))
        return orig(self, inputs, device, autocast)

    monkeypatch.setattr(TeacherRecommender, "_encode_all", counting)
    c = tiny_cohort()
    tr, va, te = (build_samples(c, c.split[p]) for p in ("train", "val", "test"))
    kw = dict(model=tiny_models["bert"], graph_prompt=False, lora_r=0, fuse_codes=True, max_length=64, head_epochs=3)
    t1 = TeacherRecommender(c.vocab("drug"), workspace=None, cache=False, **kw).fit(c, tr, va)
    first = sum(encoded)
    assert 0 < first <= len(tr) + len(va)
    p1 = t1.predict_proba(c, te)
    encoded.clear()
    t2 = TeacherRecommender(c.vocab("drug"), workspace=None, cache=False, **kw).fit(c, te, va)  # test visits already encoded
    assert sum(encoded) == 0
    enc.clear_memory()  # a new process: the disk store serves every prompt
    renamed = c.visits.copy()
    renamed["visit_id"] = "site:" + renamed["visit_id"].astype(str)
    renamed["patient_id"] = "site:" + renamed["patient_id"].astype(str)
    from kgrec.cohort.base import Cohort

    c2 = Cohort(renamed, c.codes, "tiny2", {}, None, None)
    te2 = build_samples(c2, ["site:" + p for p in c.split["test"]])
    encoded.clear()
    p2 = t1.predict_proba(c2, te2)
    assert sum(encoded) == 0 and np.allclose(p1, p2, atol=1e-6)
    with no_state_cache():  # timed predictions encode as for new patients
        encoded.clear()
        p3 = t2.predict_proba(c, te)
        assert sum(encoded) == len(te)
    assert p3.shape == p1.shape
