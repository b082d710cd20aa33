import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "aitrading.hub";
export declare const protobufFileName = "proto/hub/registry.proto";
/**
 * The hub's own messages: registration, heartbeats, health and discovery answers.
 * Field names match the JSON bodies of the hub's HTTP API one to one.
 */
export declare enum HealthStatus {
    HEALTH_STATUS_UNSPECIFIED = 0,
    HEALTH_STATUS_HEALTHY = 1,
    HEALTH_STATUS_DEGRADED = 2,
    HEALTH_STATUS_CRITICAL = 3,
    UNRECOGNIZED = -1
}
export declare function healthStatusFromJSON(object: any): HealthStatus;
export declare function healthStatusToJSON(object: HealthStatus): string;
export interface ServiceRegistration {
    name: string;
    host: string;
    port: number;
    /** "http" by default */
    protocol: string;
    /** "/health" by default */
    healthEndpoint: string;
    tenantCapable: boolean;
    /** empty = public service */
    subscriptionRequirements: string[];
    /** "basic", "premium", "enterprise" */
    resourceTier: string;
    weight: number;
    version: string;
    tags: string[];
    meta: {
        [key: string]: string;
    };
    /** seconds; unset = hub default */
    ttl?: number | undefined;
    /** empty = the hub assigns one */
    instanceId: string;
    /** unset = chosen from protocol and ttl */
    check: HealthCheck | undefined;
    /** unset = takes no part in system-wide backups */
    backup: BackupDeclaration | undefined;
}
export interface ServiceRegistration_MetaEntry {
    key: string;
    value: string;
}
/** A service that can back itself up: the hub POSTs to it in system-wide backups. */
export interface BackupDeclaration {
    /** "/backup" by default */
    endpoint: string;
    /** services whose backup must finish first */
    dependsOn: string[];
    /** seconds the hub waits (default 300) */
    timeoutSeconds?: number | undefined;
}
/** How the hub checks an instance; unset fields take the hub's defaults. */
export interface HealthCheck {
    /** "http", "tcp" or "ttl" */
    kind: string;
    /** seconds between probes */
    interval?: number | undefined;
    /** seconds before a probe fails */
    timeout?: number | undefined;
    failuresBeforeCritical?: number | undefined;
    successesBeforePassing?: number | undefined;
    degradedLatencyMs?: number | undefined;
    /** seconds critical before deregistration */
    deregisterAfter?: number | undefined;
}
export interface RegistrationResult {
    instanceId: string;
    serviceName: string;
    revision: string;
    ttl: number;
}
export interface Heartbeat {
    instanceId: string;
    /** 0..1, feeds least-load selection */
    load?: number | undefined;
}
export interface HealthCheckResult {
    status: HealthStatus;
    /** milliseconds */
    latency: number;
    /** RFC 3339, e.g. "2024-01-20T10:30:00Z" */
    lastCheck: string;
}
export interface Endpoint {
    host: string;
    port: number;
    load: number;
}
export interface DiscoveryAnswer {
    serviceName: string;
    /** "http://host:port" */
    recommendedEndpoint: string;
    allHealthyEndpoints: string[];
    /** endpoint URL -> 0..1 */
    confidence: {
        [key: string]: number;
    };
    /** always "direct_call" */
    connectionType: string;
    stale: boolean;
}
export interface DiscoveryAnswer_ConfidenceEntry {
    key: string;
    value: number;
}
export declare const ServiceRegistration: MessageFns<ServiceRegistration>;
export declare const ServiceRegistration_MetaEntry: MessageFns<ServiceRegistration_MetaEntry>;
export declare const BackupDeclaration: MessageFns<BackupDeclaration>;
export declare const HealthCheck: MessageFns<HealthCheck>;
export declare const RegistrationResult: MessageFns<RegistrationResult>;
export declare const Heartbeat: MessageFns<Heartbeat>;
export declare const HealthCheckResult: MessageFns<HealthCheckResult>;
export declare const Endpoint: MessageFns<Endpoint>;
export declare const DiscoveryAnswer: MessageFns<DiscoveryAnswer>;
export declare const DiscoveryAnswer_ConfidenceEntry: MessageFns<DiscoveryAnswer_ConfidenceEntry>;
type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;
export type DeepPartial<T> = T extends Builtin ? T : T extends globalThis.Array<infer U> ? globalThis.Array<DeepPartial<U>> : T extends ReadonlyArray<infer U> ? ReadonlyArray<DeepPartial<U>> : T extends {} ? {
    [K in keyof T]?: DeepPartial<T[K]>;
} : Partial<T>;
type KeysOfUnion<T> = T extends T ? keyof T : never;
export type Exact<P, I extends P> = P extends Builtin ? P : P & {
    [K in keyof P]: Exact<P[K], I[K]>;
} & {
    [K in Exclude<keyof I, KeysOfUnion<P>>]: never;
};
export interface MessageFns<T> {
    encode(message: T, writer?: BinaryWriter): BinaryWriter;
    decode(input: BinaryReader | Uint8Array, length?: number): T;
    fromJSON(object: any): T;
    toJSON(message: T): unknown;
    create<I extends Exact<DeepPartial<T>, I>>(base?: I): T;
    fromPartial<I extends Exact<DeepPartial<T>, I>>(object: I): T;
}
export {};
