"""Properties of the voter-modelling chapter: the simulator, the four heads, the metrics, the control, full mode."""
import io
import zipfile

import pytest
import torch

from rfy.checkpoint import RunState
from rfy.data import dataset_dir, get_spec
from rfy.errors import ConfigError
from rfy.runtime import torch_threads
from rfy.voters import (CLASSIFICATION, DISTRIBUTION, HEADS, REGRESSION, VOTER, Config, VoteModel, bin_centres,
                        bin_index, cast_votes, claims, draw_voters, expected_votes, ground_truth, pearson,
                        raw_vote_curve, run_experiment, simulate, summarise, train_head, vote_probabilities,
                        votes_equivalent)
from rfy.voters import scut

#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = dict(n_items=600, test_items=200, steps=60, heads=("distribution", "voter"), repeats=1,
                         permutations=2, heldout_votes=15)



@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest, and identically everywhere, on one thread (as run_experiment does)."""
    with torch_threads(1):
        yield


TINY = dict(n_items=300, test_items=100, n_voters=40, n_standard=20, heldout_votes=10, steps=30, batch_size=32,
            width=16, permutations=4, repeats=1)


def voters(count=30, traits=2, seed=0, **overrides):
    settings = dict(leniency_std=1.0, scale_std=0.5, noise_low=0.4, noise_high=1.0, random_share=0.1,
                    zipf_exponent=1.0)
    return draw_voters(count, traits, **{**settings, **overrides}, generator=torch.Generator().manual_seed(seed))


def test_simulated_votes_are_on_the_scale_and_training_photos_get_few_distinct_voters():
    config = Config(**TINY)
    data, population, traits = simulate(config, seed=0)
    assert data.votes.dtype == torch.long and data.votes.min() >= 0 and data.votes.max() <= config.levels - 1
    assert data.votes.shape[1] == 3 and traits.shape == (300, 3) and data.features.shape == (300, config.feature_dim)
    per_item = torch.bincount(data.vote_items, minlength=300)[data.train_items]
    assert per_item.min() >= config.votes_min and per_item.max() <= config.votes_max
    assert torch.bincount(data.vote_items, minlength=300)[data.test_items].sum() == 0  # no model sees a vote on a test photo
    pairs = data.vote_items * 1000 + data.vote_voters
    assert len(pairs.unique()) == len(pairs)  # a voter votes at most once per photo
    assert data.heldout_votes.shape == (100, 10, 3) and len(data.standard_voters) == 20
    again, _, _ = simulate(config, seed=0)
    assert torch.equal(again.votes, data.votes) and not torch.equal(simulate(config, seed=1)[0].votes, data.votes)
    correlation = torch.corrcoef(traits.T)[0, 1]
    assert 0.2 < correlation < 0.6  # trait_correlation = 0.4


def test_voter_leniency_is_recoverable_from_many_votes():
    population = voters(count=30, random_share=0.0)
    traits = torch.randn(400, 2, generator=torch.Generator().manual_seed(1))
    items = torch.arange(400).repeat(30)
    who = torch.arange(30).repeat_interleave(400)
    votes = cast_votes(traits, population, items, who, 4, torch.Generator().manual_seed(2)).float()
    mean_vote = votes.view(30, 400, 2).mean(1)  # every voter saw the same photos
    for k in range(2):
        assert torch.corrcoef(torch.stack([mean_vote[:, k], population.bias[:, k]]))[0, 1] > 0.95


def test_ground_truth_is_the_monte_carlo_mean_vote_over_all_voters():
    population = voters(count=25)
    traits = torch.randn(6, 2, generator=torch.Generator().manual_seed(3))
    repeats = 4000
    items = torch.arange(6).repeat_interleave(25).repeat(repeats)
    who = torch.arange(25).repeat(6).repeat(repeats)
    votes = cast_votes(traits, population, items, who, 4, torch.Generator().manual_seed(4)).float()
    monte_carlo = votes.view(repeats, 6, 25, 2).mean((0, 2))
    assert torch.allclose(monte_carlo, ground_truth(traits, population, 4), atol=0.02)
    probabilities = vote_probabilities(torch.randn(5, 2), torch.full((5, 2), 0.7), 4)
    assert torch.allclose(probabilities.sum(-1), torch.ones(5, 2)) and probabilities.min() >= 0
    deterministic = population.noise * 0 + 1e-4
    sharp = expected_votes(traits, type(population)(population.bias, population.scale, deterministic,
                                                    population.random, population.activity), 4)
    sharp = sharp[~population.random]  # without noise every expected vote is one integer vote (random voters: 1.5)
    assert torch.all((sharp.round() - sharp).abs() < 1e-3)


def test_heads_have_the_right_outputs_and_scores():
    x = torch.randn(7, 5)
    for kind, shape in ((REGRESSION, (7, 3)), (CLASSIFICATION, (7, 3, 10)), (DISTRIBUTION, (7, 3, 4)),
                        (VOTER, (7, 3, 4))):
        model = VoteModel(kind, 5, width=8, traits=3, levels=4, bins=10, num_voters=9, voter_dim=4)
        voters_of_rows = torch.randint(0, 9, (7,)) if kind == VOTER else None
        assert model(x, voters_of_rows).shape == shape
        score = model.score(x, torch.arange(9))
        assert score.shape == (7, 3)
        if kind != REGRESSION:
            assert score.min() >= 0 and score.max() <= 3
    assert bin_index(torch.tensor([0.0, 0.29, 0.31, 3.0]), 10, 4).tolist() == [0, 0, 1, 9]
    assert torch.allclose(bin_centres(10, 4)[[0, 9]], torch.tensor([0.15, 2.85]))
    with pytest.raises(ValueError, match="voters"):
        VoteModel(VOTER, 5, width=8, traits=3, levels=4, bins=10)(x)
    with pytest.raises(ConfigError, match="kind must be one of"):
        VoteModel("ranking", 5, width=8, traits=3, levels=4, bins=10)


def test_voter_model_with_one_voter_is_a_vote_distribution_model():
    torch.manual_seed(0)
    voter = VoteModel(VOTER, 5, width=8, traits=2, levels=4, bins=10, num_voters=1, voter_dim=3)
    with torch.no_grad():
        voter.voters.weight.normal_()
    plain = VoteModel(DISTRIBUTION, 5, width=8, traits=2, levels=4, bins=10)
    plain.trunk.load_state_dict(voter.trunk.state_dict())
    first, last = voter.head[0], voter.head[2]
    with torch.no_grad():  # W [h; e] + b = W_h h + (b + W_e e): the one embedding is a constant bias
        plain.head[0].weight.copy_(first.weight[:, :8])
        plain.head[0].bias.copy_(first.bias + first.weight[:, 8:] @ voter.voters.weight[0])
        plain.head[2].load_state_dict(last.state_dict())
    x, votes = torch.randn(11, 5), torch.randint(0, 4, (11, 2))
    only = torch.zeros(11, dtype=torch.long)
    assert torch.allclose(voter(x, only), plain(x), atol=1e-6)
    assert torch.allclose(voter.loss(x, votes, only), plain.loss(x, votes), atol=1e-6)
    assert torch.allclose(voter.score(x, torch.zeros(1, dtype=torch.long)), plain.score(x), atol=1e-6)


def test_pearson_and_the_vote_equivalence_curve():
    a, b = torch.randn(50, 2), torch.randn(50, 2)
    b[:, 1] = 2 * a[:, 1] + 0.1 * b[:, 1]
    expected = [torch.corrcoef(torch.stack([a[:, k], b[:, k]]))[0, 1] for k in range(2)]
    assert torch.allclose(pearson(a, b), torch.stack(expected), atol=1e-5)
    data, _, _ = simulate(Config(**{**TINY, "n_items": 1100, "test_items": 1000, "heldout_votes": 15}), seed=0)
    curve = raw_vote_curve(data.heldout_votes, data.heldout_truth, permutations=20,
                           generator=torch.Generator().manual_seed(0))
    assert curve.shape == (15,) and torch.all(curve[1:] > curve[:-1]) and 0 < curve[0] < curve[-1] < 1
    line = torch.tensor([0.5, 0.7, 0.8, 0.85])
    assert votes_equivalent(line, 0.75) == pytest.approx(2.5)
    assert votes_equivalent(line, 0.25) == pytest.approx(0.5)
    assert votes_equivalent(line, 0.9) == 4.0  # beyond the held-out votes: a lower bound


def test_training_lowers_the_loss_and_resumes_from_its_checkpoint(tmp_path):
    config = Config(**{**TINY, "steps": 8})
    data, _, _ = simulate(config, seed=0)
    straight = train_head(VOTER, data, config, seed=0)
    train_head(VOTER, data, config, seed=0, checkpoint_path=tmp_path / "run.pt")  # leaves the step-6 checkpoint
    assert (tmp_path / "run.pt").exists()
    resumed = train_head(VOTER, data, config, seed=0, checkpoint_path=tmp_path / "run.pt")
    assert torch.allclose(resumed.scores, straight.scores)
    longer = train_head(DISTRIBUTION, data, Config(**{**TINY, "steps": 300, "lr": 0.01}), seed=0)
    assert longer.losses[-1] < 0.9 * longer.losses[0]


def test_config_errors_name_the_field_and_allowed_values():
    with pytest.raises(ConfigError, match="heads must be"):
        Config(heads=("ranking",))
    with pytest.raises(ConfigError, match="dataset must be one of"):
        Config(dataset="hotornot")
    with pytest.raises(ConfigError, match="votes_min must be <= votes_max"):
        Config(votes_min=6)
    with pytest.raises(ConfigError, match="noise_voter_share"):
        Config(noise_voter_share=1.0)
    with pytest.raises(ConfigError, match="folds must be"):
        Config(folds=(6,))
    with pytest.raises(ConfigError, match="n_standard"):
        Config(n_standard=500)
    with pytest.raises(ConfigError, match="trunk must be one of"):
        Config(trunk="xception")
    full = Config.full()
    assert (full.dataset, full.levels, full.folds, full.votes_max) == ("scut-fbp5500", 5, (1, 2, 3, 4, 5), 60)
    assert get_spec("scut-fbp5500").files[0].filename == scut.ARCHIVE


def test_run_experiment_metrics_claims_and_the_control(tmp_path):
    config = Config(n_items=1500, test_items=300, steps=300, heads=(DISTRIBUTION, VOTER), repeats=1,
                    permutations=4, heldout_votes=15)
    metrics = run_experiment(config, RunState(tmp_path, resume=False))
    for key in ("voter_r", "distribution_r", "voter_k_star", "raw_votes_r_15", "control_voter_r", "run0_voter_r",
                "voter_k_star_advantage", "control_voter_k_star_advantage"):
        assert key in metrics
    assert metrics["voter_advantage"] > 0.005  # biased voters: modelling them pays
    assert metrics["control_voter_advantage"] < metrics["voter_advantage"] / 2  # identical voters: it does not
    assert metrics["voter_k_star_advantage"] == pytest.approx(
        metrics["run0_voter_k_star"] - metrics["run0_distribution_k_star"])
    assert [claim.key for claim in claims(metrics)] == ["voter-model-best", "voter-model-vote-margin",
                                                         "control-no-advantage"]
    assert claims({"scut_voter_r": 0.9}) == []


def tied_runs(voter_gain: float) -> dict[int, dict[str, dict[str, float]]]:
    """Two seeds' runs of all four heads on a linear raw-vote curve r(n) = 0.03 n (n = 1 … 30), the voter model
    ``voter_gain`` above the vote-distribution head in r, and the control's voter model level with it."""
    curve = {f"raw_votes_r_{n}": 0.03 * n for n in range(1, 31)}
    heads = {REGRESSION: 0.30, CLASSIFICATION: 0.33, DISTRIBUTION: 0.45}
    return {seed: {"votes": curve, **{head: {"r": r + 0.01 * seed} for head, r in heads.items()},
                   VOTER: {"r": heads[DISTRIBUTION] + voter_gain + 0.01 * seed}} for seed in (0, 1)}


def test_claims_fail_when_another_head_ties_with_the_voter_model():
    config = Config()
    control = summarise(config, tied_runs(0.0), "control_")
    tie = summarise(config, tied_runs(0.0), "") | control
    assert tie["voter_advantage"] == pytest.approx(0.0) and tie["voter_k_star_advantage"] == pytest.approx(0.0)
    assert {c.key: c.holds for c in claims(tie)} == {"voter-model-best": False, "voter-model-vote-margin": False,
                                                     "control-no-advantage": True}
    # A clear win: 0.06 in r is two raw votes on this curve (0.03 per vote).
    win = summarise(config, tied_runs(0.06), "") | control
    assert win["voter_k_star_advantage"] == pytest.approx(2.0)
    assert all(c.holds for c in claims(win))


# --- full mode on a tiny archive in the SCUT-FBP5500 release format ---------------------------------------------

def xlsx_bytes(rows: list[list]) -> bytes:
    """A minimal .xlsx workbook with one sheet "ALL": strings shared, numbers inline (as Excel writes them)."""
    strings = sorted({value for row in rows for value in row if isinstance(value, str)})
    index = {value: i for i, value in enumerate(strings)}
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

    def cell(column: int, row: int, value) -> str:
        ref = f"{'ABCD'[column]}{row}"
        if isinstance(value, str):
            return f'<c r="{ref}" t="s"><v>{index[value]}</v></c>'
        return f'<c r="{ref}"><v>{value}</v></c>'

    sheet_rows = "".join(f'<row r="{r + 1}">' + "".join(cell(c, r + 1, v) for c, v in enumerate(row)) + "</row>"
                         for r, row in enumerate(rows))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        book.writestr("xl/workbook.xml", f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
                                         f'<sheet name="ALL" sheetId="1" r:id="rId1"/></sheets></workbook>')
        book.writestr("xl/_rels/workbook.xml.rels",
                      '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                      '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="worksheet"/></Relationships>')
        book.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}">' +
                      "".join(f"<si><t>{value}</t></si>" for value in strings) + "</sst>")
        book.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{main}"><sheetData>{sheet_rows}</sheetData>'
                                                  "</worksheet>")
    return buffer.getvalue()


def write_fake_scut(path, images=40, raters=6):
    """``images`` faces of 16x16 px and every rater's 1-5 rating, in the release's zip layout (fold 1 only)."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    names = [f"{'AF' if i % 2 else 'CM'}{i + 1}.jpg" for i in range(images)]
    quality = torch.rand(images, generator=generator) * 4
    rows = [["Rater", "Filename", "Rating", "original Rating"]]
    for rater in range(1, raters + 1):
        ratings = (quality + torch.randn(images, generator=generator) * 0.5).round().clamp(0, 4) + 1
        rows += [[rater, name, int(value), int(value)] for name, value in zip(names, ratings)]
    root = "SCUT-FBP5500_v2/"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(root + "All_Ratings.xlsx", xlsx_bytes(rows))
        for i, name in enumerate(names):
            pixels = (torch.rand(16, 16, 3, generator=generator) * 255 * quality[i] / 4).to(torch.uint8).numpy()
            jpeg = io.BytesIO()
            Image.fromarray(pixels).save(jpeg, format="JPEG")
            archive.writestr(root + "Images/" + name, jpeg.getvalue())
        folds = root + "train_test_files/5_folders_cross_validations_files/cross_validation_1/"
        archive.writestr(folds + "train_1.txt", "".join(f"{name} 3.0\r\n" for name in names[:30]))
        archive.writestr(folds + "test_1.txt", "".join(f"{name} 3.0\r\n" for name in names[30:]))
    return names, rows


def test_xlsx_reader_reads_shared_strings_and_numbers():
    rows = [["Rater", "Filename", "Rating"], [1, "AF1.jpg", 3], [2, "AF1.jpg", 4.5]]
    assert scut.read_xlsx(xlsx_bytes(rows)) == [["Rater", "Filename", "Rating"], [1.0, "AF1.jpg", 3.0],
                                                [2.0, "AF1.jpg", 4.5]]


def test_full_mode_on_a_tiny_scut_archive(tmp_path, monkeypatch):
    target = dataset_dir("scut-fbp5500") / scut.ARCHIVE
    target.parent.mkdir(parents=True)
    names, _ = write_fake_scut(target)
    archive = scut.read_scut_archive(target)
    assert archive.ratings.shape == (40, 6) and sorted(archive.folds) == [1] and len(archive.folds[1][1]) == 10
    assert archive.ratings.min() == 0 and archive.ratings.max() <= 4  # 1-5 on disk, 0-4 inside
    trunk = lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    monkeypatch.setitem(scut.TRUNK_BUILDERS, "resnet18", trunk)  # pretrained weights cannot be downloaded here
    config = Config.full(steps=6, batch_size=8, width=8, image_size=16, folds=(1,), votes_min=2, votes_max=4,
                         n_standard=6, device="cpu")
    data = scut.fold_data(archive, torch.randn(40, 4), 1, config, seed=0)
    assert data.heldout_votes.shape == (10, 3, 1) and data.votes.max() <= 4
    metrics = run_experiment(config, RunState(tmp_path / "run", resume=False))
    for head in HEADS:
        traits = [value for key, value in metrics.items() if key.removeprefix(f"scut_{head}_r_").isdigit()]
        assert metrics[f"scut_{head}_r"] == pytest.approx(sum(traits) / len(traits))
        assert metrics[f"scut_{head}_rmse"] >= metrics[f"scut_{head}_mae"]  # RMSE >= MAE, equal only for equal errors
    assert metrics["scut_folds"] == 1.0 and (tmp_path / "run" / "features.pt").exists()


def test_full_mode_without_the_archive_says_what_to_download(monkeypatch):
    def offline(url):
        raise OSError("network unreachable")

    monkeypatch.setattr("rfy.data.download.open_url", offline)
    with pytest.raises(Exception, match=r"SCUT-FBP5500_v2\.1\.zip[\s\S]*drive\.google\.com"):
        run_experiment(Config.full(), RunState(dataset_dir("scut-fbp5500").parent / "runs", resume=False))
