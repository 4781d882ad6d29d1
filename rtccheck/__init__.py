"""rtccheck: WebRTC connectivity checks that push real data and explain failures."""
