"""Devices at the gate, behind small interfaces with simulators; imports none of our packages.

* :mod:`hardware.sources`: frame sources (OpenCV capture, image folder, picamera2,
  keyboard wedge, scene simulator), ``open_source(cfg)``;
* :mod:`hardware.scene`: the scene simulator (permits as a camera sees them);
* :mod:`hardware.outputs`: relay, lights, buzzer (gpiozero or simulated), ``open_outputs(cfg)``;
* :mod:`hardware.config`: the pydantic config models of both;
* :mod:`hardware.image`: image files and odd arrays to 8-bit frames;
* :mod:`hardware.errors`: ``HardwareError`` and its leaves.

Drivers (OpenCV capture, picamera2, gpiozero, evdev) are imported only when chosen.
"""
