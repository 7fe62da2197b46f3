"""No driver is imported, and nothing happens, until a backend is chosen."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_packages_loads_no_driver() -> None:
    code = (
        "import sys\n"
        "import hardware, hardware.sources, hardware.outputs, hardware.config, hardware.scene\n"
        "import gate_agent.decode, gate_agent.debounce\n"
        "from hardware.outputs import open_outputs\n"
        "open_outputs({'backend': 'simulated'}, start_thread=False).close()\n"
        "loaded = [m for m in ('cv2', 'gpiozero', 'evdev', 'picamera2', 'zxingcpp', 'pyzbar')\n"
        "          if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""
    assert out.stderr == ""
