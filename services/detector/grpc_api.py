"""DetectorService: the rules that run, for operators."""

from __future__ import annotations

import grpc

from deelrx.detector.v1 import detector_pb2, detector_pb2_grpc
from services.detector.app import Detector


class DetectorServicer(detector_pb2_grpc.DetectorServiceServicer):
    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    async def ListRules(
        self, request: detector_pb2.ListRulesRequest, context: grpc.aio.ServicerContext
    ) -> detector_pb2.ListRulesResponse:
        return detector_pb2.ListRulesResponse(
            rules=[
                detector_pb2.Rule(
                    id=s.id,
                    description=s.description,
                    severity=s.severity,
                    threshold=s.threshold,
                    window_seconds=s.window_seconds,
                )
                for s in self.detector.rules
            ]
        )
