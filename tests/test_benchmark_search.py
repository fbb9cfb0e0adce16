"""The benchmark search end to end on its `quick` settings (in-process launcher, real files)."""

import bad_inputs as bi
from unlearn_jax import io
from unlearn_jax.pipelines import benchmark_search


def test_quick_search_rows_match_each_settings_report(tmp_path, monkeypatch):
  wd = tmp_path / "search"
  argv = [f"--config={bi.CONFIGS / 'benchmark_search.py'}:quick=1", "--config.progress=False",
          f"--workdir={wd}"]
  rc, out, err = bi.run_launcher_module("experiments.benchmark_search",
                                        bi.CONFIGS / "benchmark_search.py", argv)
  assert rc == 0, err
  rows = io.read_jsonl(wd / "search.jsonl")
  assert [r["setting"] for r in rows] == ["digits_mlp", "digits_mlp_nowd"]
  for r in rows:
    res = io.read_json(wd / r["setting"] / "results.json")
    g = res["groups"]
    assert r["delta_forget"] == g["original"]["delta"]["forget_accuracy"]["mean"]
    assert abs(r["delta_forget"] - (g["oracle"]["mean"]["forget_accuracy"]
                                    - g["original"]["mean"]["forget_accuracy"])) < 1e-12
    nf, nr = res["forget"]["size"], res["retain_size"]
    acc = g["original"]["mean"]
    assert abs(r["train_acc"] - (nf * acc["forget_accuracy"] + nr * acc["retain_accuracy"])
               / (nf + nr)) < 1e-12
    assert r["seeds"] == 2 and r["oracle_seeds"] == 4
    # 2 seeds leave no FQ bin: the verdict says so instead of claiming power
    assert r["fq"] is None and not r["can_rank"] and "FQ" in r["verdict"]
  assert io.read_json(wd / "digits_mlp_nowd" / "config.json")["train"]["weight_decay"] == 0.0
  assert (wd / "search.md").read_text() in out

  def fail(*args, **kwargs):
    raise AssertionError("a finished setting was trained again")
  monkeypatch.setattr(benchmark_search, "run_setting", fail)
  rc, out2, err = bi.run_launcher_module("experiments.benchmark_search",
                                         bi.CONFIGS / "benchmark_search.py", argv)
  assert rc == 0 and out2 == out, err


def test_bad_setting_is_refused_before_anything_is_written(tmp_path):
  wd = tmp_path / "search"
  argv = [f"--config={bi.CONFIGS / 'benchmark_search.py'}:quick=1",
          "--config.settings.digits_mlp.train.epochs=0", f"--workdir={wd}"]
  rc, out, err = bi.run_launcher_module("experiments.benchmark_search",
                                        bi.CONFIGS / "benchmark_search.py", argv)
  assert rc == 2 and "config.train.epochs must be an integer >= 1" in err and not wd.exists()
