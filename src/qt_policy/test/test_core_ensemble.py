"""QEnsemble: acts on the mean Q of its members, through the same decoder and checkpoints."""
import dataclasses
import json

import pytest
import torch

from qt_policy.core.checkpoint import load_policy_model, save_checkpoint, save_ensemble
from qt_policy.core.decoding import greedy_decode
from qt_policy.core.ensemble import QEnsemble
from qt_policy.core.model import QTransformer
from qt_test_helpers.models import random_context, state_model


def test_ensemble_of_one_model_twice_decodes_like_the_model():
    model = state_model()
    images, text, state = random_context(model, batch=6)
    alone = greedy_decode(model, images, text, state)
    twice = greedy_decode(QEnsemble([model, model]), images, text, state)
    assert torch.equal(alone.bins, twice.bins)
    assert torch.allclose(alone.dim_q, twice.dim_q, atol=1e-6)


def test_ensemble_picks_the_argmax_of_the_mean_q_at_every_dimension():
    members = [state_model(seed=s) for s in (0, 1, 2)]
    ensemble = QEnsemble(members)
    images, text, state = random_context(members[0], batch=8)
    out = greedy_decode(ensemble, images, text, state)
    ctxs = [m.encode_context(images, text, state) for m in members]
    d = members[0].cfg.action_dim
    for i in range(d):  # teacher-force the chosen prefix; the member mean must peak at the chosen bin
        prefix = out.bins[:, :i]
        mean_q = torch.stack([torch.sigmoid(m.action_logits(c, prefix)[:, i]) for m, c in zip(members, ctxs)]).mean(0)
        assert torch.equal(mean_q.argmax(-1), out.bins[:, i])
        assert torch.allclose(mean_q.gather(-1, out.bins[:, i:i + 1])[:, 0], out.dim_q[:, i], atol=1e-5)
    # and the members on their own disagree somewhere, so the mean is doing something
    alone = [greedy_decode(m, images, text, state).bins for m in members]
    assert any(not torch.equal(a, out.bins) for a in alone)


def test_ensemble_cache_and_full_recompute_agree():
    ensemble = QEnsemble([state_model(seed=s) for s in (3, 4)])
    images, text, state = random_context(ensemble.members[0], batch=5)
    cached = greedy_decode(ensemble, images, text, state, use_cache=True)
    full = greedy_decode(ensemble, images, text, state, use_cache=False)
    assert torch.equal(cached.bins, full.bins)
    assert torch.allclose(cached.q_value, full.q_value, atol=1e-5)


def test_members_must_share_inputs_and_bins():
    with pytest.raises(ValueError, match="num_bins"):
        QEnsemble([state_model(num_bins=5), state_model(num_bins=7)])
    with pytest.raises(ValueError, match="at least one"):
        QEnsemble([])
    # contexts of another width cannot stack: refused when built, not at the first decode
    with pytest.raises(ValueError, match="d_model"):
        small = state_model()
        QEnsemble([small, QTransformer(dataclasses.replace(small.cfg, d_model=64))])


def test_saved_ensemble_loads_and_acts_like_the_members_listed(tmp_path):
    members = [state_model(seed=s) for s in (0, 1)]
    dirs = [save_checkpoint(tmp_path / f"run{k}", m, {"note": k}) for k, m in enumerate(members)]
    saved = save_ensemble(tmp_path / "ens", dirs, {"trained_with": "test"})
    assert json.loads((saved / "config.json").read_text())["ensemble_members"] == ["member_0", "member_1"]
    images, text, state = random_context(members[0], batch=6)
    from_dir = load_policy_model(saved)
    from_list = load_policy_model(dirs)
    assert isinstance(from_dir, QEnsemble) and len(from_dir.members) == 2
    a = greedy_decode(from_dir, images, text, state)
    b = greedy_decode(from_list, images, text, state)
    c = greedy_decode(QEnsemble(members), images, text, state)
    assert torch.equal(a.bins, b.bins) and torch.equal(a.bins, c.bins)
    # a single plain checkpoint stays a plain model
    assert not isinstance(load_policy_model(dirs[0]), QEnsemble)
    with pytest.raises(ValueError, match="itself an ensemble"):
        save_ensemble(tmp_path / "nested", [saved, dirs[0]])
    with pytest.raises(ValueError, match="at least two"):
        save_ensemble(tmp_path / "one", dirs[:1])


def test_save_ensemble_refuses_members_that_cannot_act_together(tmp_path):
    dirs = [save_checkpoint(tmp_path / "a", state_model(num_bins=5)), save_checkpoint(tmp_path / "b", state_model(num_bins=7))]
    with pytest.raises(ValueError, match="num_bins"):
        save_ensemble(tmp_path / "ens", dirs)
    assert not (tmp_path / "ens").exists()  # nothing written


def test_ensemble_cli_bundles_runs_and_reports_bad_members(tmp_path, capsys):
    from qt_policy.research.ensemble import main

    dirs = [save_checkpoint(tmp_path / f"run{k}", state_model(seed=k)) for k in range(3)]
    assert main([*map(str, dirs), "--out", str(tmp_path / "ens")]) == 0
    model = load_policy_model(tmp_path / "ens")
    assert isinstance(model, QEnsemble) and len(model.members) == 3
    odd = save_checkpoint(tmp_path / "odd", state_model(num_bins=7))
    assert main([str(dirs[0]), str(odd), "--out", str(tmp_path / "bad")]) == 2
    assert "num_bins" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), str(dirs[0]), "--out", str(tmp_path / "bad2")]) == 2
