import Logging
import RootcausesPostgres
import RootcausesProtocol

/// Turns an error a handler threw into the protocol's answer, for every service: a database
/// that cannot be reached is `unavailable` (nothing was stored, safe to retry); anything else
/// is `internal`, logged with its detail and never shown to the client.
public func protocolError(for error: any Error, logger: Logger) -> ProtocolError {
    if let protocolError = error as? ProtocolError { return protocolError }
    if let postgres = error as? PostgresError, postgres.isConnectionProblem {
        logger.warning("database unavailable", metadata: ["error": "\(postgres.message)"])
        return ProtocolError(
            .unavailable,
            "the database is unavailable; retry later: resending the same request is safe (a submission stored before the failure answers duplicate)"
        )
    }
    return Responder.internalError(error, logger: logger)
}
