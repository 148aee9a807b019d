import Logging
import RootcausesPostgres
import RootcausesProtocol

/// Turns a database failure into the protocol's answer: `unavailable` when the database cannot
/// be reached (nothing was stored, safe to retry), `internal` otherwise (logged with detail).
public func protocolError(for error: any Error, logger: Logger) -> ProtocolError {
    if let protocolError = error as? ProtocolError { return protocolError }
    if let postgres = error as? PostgresError, postgres.isConnectionProblem {
        logger.warning("database unavailable", metadata: ["error": "\(postgres.message)"])
        return ProtocolError(.unavailable, "the database is unavailable; retry later: resending the same request is safe (a submission stored before the failure answers duplicate)")
    }
    logger.error("unexpected failure", metadata: ["error": "\(error)"])
    return ProtocolError(.internal, "the server failed to answer this request; see its log")
}
