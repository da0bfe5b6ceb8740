"""h1 fetches 200 kB from a TCP server on h2 port 8080 (README "Observing")."""
import threading

import pktflow

srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2")
srv.bind(("10.0.2.10", 8080))
srv.listen()


def serve():
    conn, _ = srv.accept()
    conn.sendall(b"x" * 200_000)
    conn.close()


server = threading.Thread(target=serve)
server.start()
with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
    s.connect(("10.0.2.10", 8080))
    got = 0
    while data := s.recv(65536):
        got += len(data)
server.join()
srv.close()
print(f"{got} bytes")
