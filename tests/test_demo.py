from app import leads
from app.ops import demo


def test_demo_business_created_once(db, config, capsys):
    from app import config as config_mod
    cfg = config_mod.load(config.path, env={"CAPTEO_DEMO_CREATE": "true"})
    password = demo.ensure(db, cfg)
    assert password
    out = capsys.readouterr().out
    assert "demo@capteo.test" in out and password in out and f"{cfg.public_url}/fr/login" in out
    assert (cfg.data_dir / "secrets" / "demo-password").read_text().strip() == password
    assert leads.count(db) == len(demo.SAMPLE_LEADS)
    assert demo.ensure(db, cfg) is None
    assert leads.count(db) == len(demo.SAMPLE_LEADS)


def test_no_demo_when_disabled(db, config):
    assert demo.ensure(db, config) is None
    assert leads.count(db) == 0
