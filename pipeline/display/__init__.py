"""`nero display`: the procedure-room page. A local web server subscribes to monitors over ZeroMQ and pushes
what a person needs to see to browsers over a WebSocket (docs/DISPLAY.md)."""
