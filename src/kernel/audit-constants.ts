// Message types and constants from <linux/audit.h> and <linux/netlink.h>.

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_ACK = 0x4;

export const AUDIT_GET = 1000;
export const AUDIT_SET = 1001;
export const AUDIT_LIST_RULES = 1013;
export const AUDIT_ADD_RULE = 1011;
export const AUDIT_DEL_RULE = 1012;
export const AUDIT_FIRST_USER_MSG = 1100;

/** The kernel's multicast group for read-only log listeners (needs CAP_AUDIT_READ). */
export const AUDIT_NLGRP_READLOG = 1;

export const AUDIT_STATUS_ENABLED = 0x1;
export const AUDIT_STATUS_FAILURE = 0x2;
export const AUDIT_STATUS_PID = 0x4;
export const AUDIT_STATUS_RATE_LIMIT = 0x8;
export const AUDIT_STATUS_BACKLOG_LIMIT = 0x10;
export const AUDIT_STATUS_BACKLOG_WAIT_TIME = 0x20;
