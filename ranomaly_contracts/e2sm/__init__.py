"""O-RAN E2 on the wire: E2AP RICindication (``e2ap``) and E2SM-KPM v2/v3 (``kpm``, module ``kpm.asn``).

``fast`` decodes a RICindication with its KPM report quickly, falling back to the library path; ``samples`` builds
random valid payloads; ``bench`` compares the two decoding paths. Shared by the xApp (decodes) and the simulator
(encodes).
"""
