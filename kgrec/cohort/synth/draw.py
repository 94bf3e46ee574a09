"""Drawing a cohort from the :class:`~kgrec.cohort.synth.knowledge.Knowledge`: patients and their
admissions in time, treated conditions (chronic, acute, recurring), noise diagnoses, procedures, and the
orders (indicated drugs, second drugs, trial partners, background formulary, noise) of every visit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.cohort.synth.knowledge import Knowledge
from kgrec.cohort.synth.settings import P, Progress
from kgrec.errors import InputError


def _grouped_choice(rng: np.random.Generator, group_start: np.ndarray, weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For each entry of ``groups`` (a group index), one row of that group drawn by ``weights``.

    Rows of group ``g`` are ``group_start[g]:group_start[g+1]`` of ``weights``."""
    n_groups = len(group_start) - 1
    gid = np.repeat(np.arange(n_groups), np.diff(group_start))
    cw = np.cumsum(weights)
    base = np.concatenate([[0.0], cw])[group_start[:-1]]
    tot = cw[group_start[1:] - 1] - base
    norm = (cw - base[gid]) / tot[gid] + gid  # in (g, g+1]
    u = rng.random(len(groups))
    idx = np.searchsorted(norm, groups + u, side="left")
    return np.minimum(idx, group_start[groups + 1] - 1)


def _draw(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cw = np.cumsum(weights)
    return np.minimum(np.searchsorted(cw, rng.random(n) * cw[-1], side="right"), len(weights) - 1)



@dataclass
class Drawn:
    """A drawn cohort, visits grouped by patient (``pat``: the patient of each visit)."""

    n_pat: int
    visits: int
    pat: np.ndarray
    first: np.ndarray  # first visit of each patient
    n_vis: np.ndarray  # visits of each patient
    admit: np.ndarray
    disch: np.ndarray
    dob: np.ndarray
    died: np.ndarray  # per visit: the patient died in it
    death_last: np.ndarray  # per patient
    dx: pd.DataFrame  # v, code, seq
    proc: pd.DataFrame  # v, code, seq
    rx: pd.DataFrame  # v, p (product row), origin, start, end
    code_str: np.ndarray  # K.codes["code"]
    t_code: np.ndarray  # the treated conditions' code indices ...
    t_prod: np.ndarray  # ... and their indicated products


def draw_cohort(K: Knowledge, visits: int, n_pat: int, rng: np.random.Generator, say: Progress, data_dir: Path | None = None) -> Drawn:
    """Everything random about the cohort except the tables' demographic columns, from ``rng``."""
    pr = P

    # ---- patients -> visits (each patient >= 1 visit, heavy tail)
    w = rng.gamma(0.5, 1.0, n_pat)
    extra = rng.multinomial(visits - n_pat, w / w.sum()) if visits > n_pat else np.zeros(n_pat, dtype=int)
    n_vis = 1 + extra
    pat = np.repeat(np.arange(n_pat), n_vis)  # patient index of each visit, visits grouped by patient
    first = np.concatenate([[0], np.cumsum(n_vis)[:-1]])
    order = np.arange(visits) - first[pat]
    has_prev = order > 0

    # dates: first admission 2100-2200, age 18-90, stays lognormal, gaps lognormal
    start = np.datetime64("2100-01-01T00:00:00", "s")
    first_adm = start + (rng.random(n_pat) * 100 * 365.25 * 86400).astype("timedelta64[s]")
    age_days = (rng.uniform(18, 90, n_pat) * 365.25).astype(np.int64)
    dob = (first_adm.astype("datetime64[D]") - age_days.astype("timedelta64[D]")).astype("datetime64[s]")
    los = (np.clip(rng.lognormal(np.log(4 * 86400), 0.8, visits), 3600, 60 * 86400) // 60 * 60).astype(np.int64)
    gap = np.clip(rng.lognormal(np.log(150 * 86400), 1.1, visits), 86400, 8 * 365 * 86400).astype(np.int64)
    step = np.where(has_prev, np.roll(los, 1) + gap, 0)
    # cumulative offset within patient
    cum = np.cumsum(step)
    offset = cum - cum[first[pat]]
    admit = (first_adm[pat] + offset.astype("timedelta64[s]")).astype("datetime64[m]").astype("datetime64[s]")
    disch = admit + los.astype("timedelta64[s]")
    death_last = rng.random(n_pat) < 0.08
    last = np.zeros(visits, bool)
    last[first + n_vis - 1] = True
    died = last & death_last[pat]

    # ---- treated conditions: (visit, code index, product row, origin)
    codes_w = K.codes["weight"].to_numpy()
    n_codes = len(K.codes)
    if n_codes == 0:
        raise InputError("the graph gives no diagnosis -> drug indication with a prescribable product", path=data_dir)
    tw = K.treat["weight"].to_numpy()
    gstart = np.concatenate([K.codes["start"].to_numpy(), [len(K.treat)]]).astype(np.int64)
    tprod = K.treat["product"].to_numpy()

    # chronic: per patient, fixed code and drug
    n_chr = rng.poisson(pr["chronic_per_patient"], n_pat)
    chr_pat = np.repeat(np.arange(n_pat), n_chr)
    chr_code = _draw(rng, codes_w, len(chr_pat))
    chr_row = _grouped_choice(rng, gstart, tw, chr_code)
    # expand to visits of the patient
    cv_n = n_vis[chr_pat]
    cv_visit = np.repeat(first[chr_pat], cv_n) + (np.arange(cv_n.sum()) - np.repeat(np.cumsum(cv_n) - cv_n, cv_n))
    cv_code = np.repeat(chr_code, cv_n)
    cv_row = np.repeat(chr_row, cv_n)
    present = rng.random(len(cv_visit)) < pr["chronic_present"]
    cv_visit, cv_code, cv_row = cv_visit[present], cv_code[present], cv_row[present]
    cv_treated = rng.random(len(cv_visit)) < pr["chronic_treated"]

    # acute: per visit 1 + Poisson
    n_ac = 1 + rng.poisson(pr["acute_extra"], visits)
    ac_visit = np.repeat(np.arange(visits), n_ac)
    ac_code = _draw(rng, codes_w, len(ac_visit))
    ac_row = _grouped_choice(rng, gstart, tw, ac_code)
    ac_treated = rng.random(len(ac_visit)) < pr["acute_treated"]
    # recurrence: an acute condition of the previous visit comes back with the same drug
    nxt = ac_visit + 1
    ok = (nxt < visits) & (rng.random(len(ac_visit)) < pr["recur"])
    ok[ok] = pat[nxt[ok]] == pat[ac_visit[ok]]
    re_visit, re_code, re_row, re_treated = nxt[ok], ac_code[ok], ac_row[ok], ac_treated[ok]

    cond_visit = np.concatenate([ac_visit, re_visit, cv_visit])
    cond_code = np.concatenate([ac_code, re_code, cv_code])
    cond_row = np.concatenate([ac_row, re_row, cv_row])
    cond_treated = np.concatenate([ac_treated, re_treated, cv_treated])
    cond_kind = np.concatenate([np.zeros(len(ac_visit), np.int8), np.ones(len(re_visit), np.int8), np.full(len(cv_visit), 2, np.int8)])
    say("diagnoses and procedures", 0.35)

    # ---- diagnoses: treated conditions first (acute, recurring, chronic), then noise codes, de-duplicated
    code_str = K.codes["code"].to_numpy().astype(object)
    dx_codes = K.dx_dict["code"].to_numpy().astype(object)
    n_noise = rng.poisson(pr["noise_dx"], visits)
    nz_visit = np.repeat(np.arange(visits), n_noise)
    nz_code = dx_codes[_draw(rng, K.dx_dict["weight"].to_numpy(), len(nz_visit))]
    dx = pd.DataFrame(
        {
            "v": np.concatenate([cond_visit, nz_visit]),
            "k": np.concatenate([cond_kind, np.full(len(nz_visit), 3, np.int8)]),
            "r": rng.random(len(cond_visit) + len(nz_visit)),
            "code": np.concatenate([code_str[cond_code], nz_code]),
        }
    )
    # the first acute condition is the primary diagnosis; the rest in random order
    dx["k"] = np.where(dx["k"] == 0, 0, 1)
    dx = dx.sort_values(["v", "k", "r"], kind="stable")
    dx = dx.drop_duplicates(["v", "code"])
    dx["seq"] = dx.groupby("v").cumcount() + 1

    n_proc = np.where(rng.random(visits) < pr["no_procedure_visit"], 0, 1 + rng.poisson(pr["procedures"] - 1, visits))
    pv = np.repeat(np.arange(visits), n_proc)
    pcode = K.proc_dict["code"].to_numpy().astype(object)[_draw(rng, K.proc_dict["weight"].to_numpy(), len(pv))]
    proc = pd.DataFrame({"v": pv, "code": pcode}).drop_duplicates(["v", "code"])
    proc["seq"] = proc.groupby("v").cumcount() + 1
    say("prescriptions", 0.45)

    # ---- prescriptions: products per visit with their origin
    t_v = cond_visit[cond_treated]
    t_code = cond_code[cond_treated]
    t_prod = tprod[cond_row[cond_treated]]
    origin_treat = np.where(cond_kind[cond_treated] == 2, 1, 0)  # 0 acute/recurring indication, 1 chronic
    # a second indicated drug for some treated conditions
    sec = rng.random(len(t_v)) < pr["second_drug"]
    s_v, s_code = t_v[sec], t_code[sec]
    s_prod = tprod[_grouped_choice(rng, gstart, tw, s_code)]
    # trial partners
    tp_v = np.empty(0, np.int64)
    tp_prod = np.empty(0, np.int64)
    if len(K.partners):
        keyed = pd.DataFrame({"i": np.arange(len(t_v)), "code": code_str[t_code], "product": t_prod})
        keyed = keyed[rng.random(len(keyed)) < pr["trial_partner"]]
        m = keyed.merge(K.partners, on=["code", "product"], how="inner")
        if len(m):
            m["r"] = rng.random(len(m))
            m = m.sort_values(["i", "r"]).drop_duplicates("i")
            tp_v = t_v[m["i"].to_numpy()]
            tp_prod = m["partner"].to_numpy(dtype=np.int64)
    # background and noise
    n_bg = rng.poisson(pr["background"], visits)
    bg_v = np.repeat(np.arange(visits), n_bg)
    bg_prod = K.background["product"].to_numpy()[_draw(rng, K.background["weight"].to_numpy(), len(bg_v))]
    n_nd = rng.poisson(pr["noise_drugs"], visits)
    nd_v = np.repeat(np.arange(visits), n_nd)
    n_ind_products = int((K.products["ingredient"] != "").sum())
    nd_prod = rng.integers(0, n_ind_products, len(nd_v))

    rx = pd.DataFrame(
        {
            "v": np.concatenate([t_v, s_v, tp_v, bg_v, nd_v]),
            "p": np.concatenate([t_prod, s_prod, tp_prod, bg_prod, nd_prod]).astype(np.int64),
            "origin": np.concatenate(
                [origin_treat, np.full(len(s_v), 2), np.full(len(tp_v), 3), np.full(len(bg_v), 4), np.full(len(nd_v), 5)]
            ).astype(np.int8),
        }
    )
    rx = rx.sort_values(["v", "origin"], kind="stable").drop_duplicates(["v", "p"])
    no_drug = rng.random(visits) < pr["no_drug_visit"]
    rx = rx[~no_drug[rx["v"].to_numpy()]]
    reps = 1 + rng.poisson(pr["rows_per_drug"], len(rx))
    rx = rx.loc[rx.index.repeat(reps)].reset_index(drop=True)
    rv = rx["v"].to_numpy()
    # dates: start within the stay, end start..discharge
    stay_days = np.maximum(1, (disch.astype("datetime64[D]") - admit.astype("datetime64[D]")).astype(np.int64) + 1)
    sd = (rng.random(len(rx)) * stay_days[rv]).astype(np.int64)
    ed = sd + (rng.random(len(rx)) * (stay_days[rv] - sd)).astype(np.int64)
    rx["start"] = admit[rv].astype("datetime64[D]") + sd.astype("timedelta64[D]")
    rx["end"] = admit[rv].astype("datetime64[D]") + ed.astype("timedelta64[D]")
    rx = rx.sort_values(["v", "start", "p"], kind="stable").reset_index(drop=True)
    return Drawn(n_pat, visits, pat, first, n_vis, admit, disch, dob, died, death_last, dx, proc, rx, code_str, t_code, t_prod)
