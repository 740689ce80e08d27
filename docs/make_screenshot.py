"""Take docs/ui.png: the web UI served on 127.0.0.1 (fake CVAT task, a finished run), in headless chromium.

    make browser && .venv/bin/python docs/make_screenshot.py

It reuses the web UI tests' set-up (tests/ui_fixtures.py): the fake CVAT with task 42, the UI template whose
training step is a fake that prints a few epochs of events, the local backend. The PNG is reduced to a
palette of 64 colours, so that it stays small in the repository.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

OUT = ROOT / "docs" / "ui.png"


def main() -> int:
    import playwright.sync_api as playwright_api
    from PIL import Image

    from api_fixtures import TOKEN, client, served, settings_for, wait_for
    from cvatflow.api import create_app
    from cvatflow.config import NodePool, NodePools
    from fake_cvat_extra import cvat_with_task
    from ui_fixtures import UI_TEMPLATE, WIDE, install_trainer, install_ui_template, launch_chromium

    pools = NodePools(pools=[NodePool("CPU: 2 cores", "cpu-small"), NodePool("GPU: 1x T4", "g4dn.xlarge")])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trainer = install_trainer(root / "python")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(trainer), os.environ.get("PYTHONPATH")]))
        with cvat_with_task() as cvat:
            install_ui_template(root / "home")
            settings = settings_for(root / "home", cvat_url=cvat.url, node_pools=pools)
            with served(create_app(settings)) as url, client(url) as http:
                answer = http.post("/api/v1/executions", json={"template": UI_TEMPLATE, "cvatTask": cvat.task_id,
                                                               "parameters": {}})
                run = answer.json()["id"]
                wait_for(lambda: http.get(f"/api/v1/executions/{run}").json()["phase"]
                         in ("Succeeded", "Failed", "Error"), timeout=120)
                with playwright_api.sync_playwright() as playwright:
                    browser = launch_chromium(playwright)
                    context = browser.new_context(viewport=WIDE, base_url=url)
                    context.add_init_script(f"sessionStorage.setItem('cvatflow.token', {json.dumps(TOKEN)})")
                    page = context.new_page()
                    target = sys.argv[1] if len(sys.argv) > 1 else "run"
                    if target == "form":
                        page.goto("/ui/")
                        page.get_by_role("button", name=re.compile(f"Train on task {cvat.task_id}\\b")).click()
                        page.get_by_role("button", name=re.compile("UI training")).click()
                    else:
                        page.goto(f"/ui/runs/{run}")
                        page.get_by_text("Succeeded").first.wait_for()
                    page.wait_for_timeout(1500)  # charts drawn
                    shot = root / "ui.png"
                    page.screenshot(path=str(shot))
                    browser.close()
        image = Image.open(shot).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        image.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
